"""Host faults with real QEMU and the test guest, through the `lima` CLI: qemu SIGKILLed, the host agent
SIGKILLed (internal and external qemu driver); every boot also runs under a LIMA_HOME holding spaces,
quotes, ``$(...)`` and a comma, so QEMU's option lists, ssh.config and gRPC addresses are exercised.

Three boots, about 10 s each under TCG. Skipped when the test guest is not built
(``.venv/bin/python scripts/build-test-guest``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import alive, events, no_processes_of, quick_status, wait_status

from lima_core.external.build import write_executable

pytestmark = pytest.mark.vm
REPO = Path(__file__).resolve().parents[2]
GUEST_ENV = "LIMA_TEST_GUEST_DIR"


def _guest_dir() -> Path | None:
    d = Path(os.environ.get(GUEST_ENV) or REPO / ".cache" / "test-guest" / "current")
    if all((d / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2")):
        return d.resolve()
    return None


@pytest.fixture(scope="module")
def guest() -> Path:
    d = _guest_dir()
    if d is None:
        pytest.skip(f"the test guest is not built: run scripts/build-test-guest (or set ${GUEST_ENV})")
    if shutil.which("qemu-system-x86_64") is None or shutil.which("ssh") is None:
        pytest.skip("qemu-system-x86_64 and ssh are needed to boot the test guest")
    return d


@pytest.fixture(scope="module")
def xdg_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module: the qemu driver's KVM probe runs once."""
    return tmp_path_factory.mktemp("xdg-cache")


class Rig:
    """A hostile LIMA_HOME with the test guest template in it, and the tag of the file an injection makes."""

    def __init__(self, root: Path, guest: Path) -> None:
        self.tag = secrets.token_hex(6)
        self.home = root / f"a b'c\"$(touch /tmp/pwned-{self.tag}),x"
        self.home.mkdir(parents=True)
        text = (REPO / "templates" / "test-guest.yaml").read_text()
        self.template = root / "test guest.yaml"
        self.template.write_text(text.replace("../.cache/test-guest/current", str(guest)))

    @property
    def pwned(self) -> bool:
        return Path(f"/tmp/pwned-{self.tag}").exists()


@pytest.fixture
def rig(short_tmp: Path, guest: Path, xdg_cache: Path, monkeypatch: pytest.MonkeyPatch, lima) -> Iterator[Rig]:
    r = Rig(short_tmp, guest)
    monkeypatch.setenv("LIMA_HOME", str(r.home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg_cache))
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "qemu")
    for var in ("LIMA_QEMU_ACCEL", "QEMU_SYSTEM_X86_64"):
        monkeypatch.delenv(var, raising=False)
    yield r
    if (r.home / "q").exists():
        lima("stop", "-f", "q")
    assert no_processes_of(r.home) == []
    assert not r.pwned


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_qemu_killed_is_noticed(lima, rig: Rig) -> None:
    lima("start", "--name", "q", str(rig.template), ok=True)
    d = rig.home / "q"
    assert _mode(d) == 0o700
    for sock in ("ha.sock", "qmp.sock", "serial.sock", "serialv.sock"):
        assert _mode(d / sock) == 0o600, sock
    iid = lima("shell", "q", "cat", "/run/lima-boot-done", ok=True).stdout.strip()  # real ssh, escaped ssh.config
    assert iid.startswith("iid-")

    qemu = quick_status("q")["driverPID"]
    os.kill(qemu, signal.SIGKILL)
    assert wait_status("q", "Stopped", timeout=30)["status"] == "Stopped"
    last = events(rig.home, "q")[-1]
    assert last["exiting"] and "qemu was killed by SIGKILL" in " ".join(last["errors"])
    assert no_processes_of(rig.home) == []
    assert (d / "disk").exists() and (d / "lima.yaml").exists()


def test_host_agent_killed_then_stop_f(lima, rig: Rig) -> None:
    lima("start", "--name", "q", str(rig.template), ok=True)
    inst = quick_status("q")
    os.kill(inst["hostAgentPID"], signal.SIGKILL)
    broken = wait_status("q", "Broken")
    assert broken["status"] == "Broken"
    assert "the qemu VM is running but its host agent is not; run `lima stop -f q`" in broken["errors"][0]
    lima("stop", "-f", "q", ok=True)
    assert not alive(inst["driverPID"])
    assert quick_status("q")["status"] == "Stopped"
    assert no_processes_of(rig.home) == []


def test_host_agent_killed_with_the_external_qemu_driver(lima, rig: Rig, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """The VM is bound to the start stream (as in Lima): the driver ends qemu, then itself."""
    bin_dir = tmp_path / "bin"
    write_executable(bin_dir, "qemu", "lima_driver_qemu.driver:QemuDriver")
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(bin_dir))
    monkeypatch.setenv("LIMA_EXTERNAL_DRIVERS", "qemu")
    r = lima("start", "--name", "q", str(rig.template), ok=True)
    assert "external VM driver 'qemu'" in r.stderr
    d = rig.home / "q"
    assert _mode(d / "qemu.drv.sock") == 0o600
    inst = quick_status("q")
    os.kill(inst["hostAgentPID"], signal.SIGKILL)
    assert wait_status("q", "Stopped", timeout=30)["status"] == "Stopped"
    assert not alive(inst["driverPID"])
    assert no_processes_of(rig.home) == []
    lima("start", "q", ok=True)  # and it boots again
    lima("stop", "q", ok=True)
    assert no_processes_of(rig.home) == []
