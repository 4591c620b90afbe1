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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import (
    alive,
    events,
    finish,
    lima_process,
    no_processes_of,
    processes_of,
    quick_status,
    run,
    status,
    wait_for,
    wait_status,
)

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


# -- a forced stop while QEMU starts ---------------------------------------------------------------------


def _slow_qemu(bin_dir: Path, marker: Path) -> Path:
    """A ``$QEMU_SYSTEM_X86_64`` that, when it starts a VM (``-pidfile``), marks it, sleeps 1.5 s, then execs
    QEMU: until then no file QEMU writes holds its pid."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "slow-qemu"
    wrapper.write_text("#!/bin/sh\n"
                       f"case \" $* \" in *\" -pidfile \"*) : > '{marker}'; sleep 1.5;; esac\n"
                       "exec qemu-system-x86_64 \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize(("mode", "delay"), [("internal", 0.3), ("internal", 1.0), ("external", 0.3)])
def test_stop_f_while_qemu_starts(mode: str, delay: float, lima, rig: Rig, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`lima stop -f` said "stopped forcibly" and left QEMU running (reparented to init): stop -f killed the host
    agent, then read qemu.pid, which QEMU had not written yet. The driver now records QEMU before it can be
    missed, and stop -f checks that nothing of the instance lives."""
    marker = tmp_path / "qemu-starting"
    monkeypatch.setenv("QEMU_SYSTEM_X86_64", str(_slow_qemu(tmp_path / "bin", marker)))
    if mode == "external":
        write_executable(tmp_path / "drivers", "qemu", "lima_driver_qemu.driver:QemuDriver")
        monkeypatch.setenv("LIMA_DRIVERS_PATH", str(tmp_path / "drivers"))
        monkeypatch.setenv("LIMA_EXTERNAL_DRIVERS", "qemu")
    lima("create", "--name", "q", str(rig.template), ok=True)
    start = lima_process("start", "q")
    try:
        wait_for(lambda: marker.exists() or start.poll() is not None, timeout=60, what="QEMU to be spawned")
        assert marker.exists(), start.communicate()
        time.sleep(delay)
        r = run("stop", "-f", "q")
        assert r.returncode == 0 and "was stopped forcibly" in r.stderr, r.stderr
        # Nothing of the instance lives once stop -f has said so (the waiting `lima start` aside).
        assert [p for p in processes_of(rig.home) if not p.startswith(f"{start.pid}:")] == []
        code, _, err = finish(start, 60)
        assert code == 1, err
    finally:
        if start.poll() is None:
            start.kill()
    assert no_processes_of(rig.home) == []
    assert quick_status("q")["status"] == "Stopped"


# -- a guest that cannot run: halted, or paused by QEMU --------------------------------------------------

#: a system provision script (run as root at boot) that waits for the user to touch a file, then runs a command
_TRIGGERED = """provision:
- mode: system
  script: |
    #!/bin/sh
    (while [ ! -e /tmp/{trigger} ]; do sleep 0.2; done; {command}) </dev/null >/dev/null 2>&1 &
"""


def _guest_that_will(rig: Rig, trigger: str, command: str) -> Path:
    path = rig.template.with_name(f"{trigger}.yaml")
    path.write_text(rig.template.read_text() + _TRIGGERED.format(trigger=trigger, command=command))
    return path


def _cannot_run(lima, rig: Rig, reason: str) -> None:
    """What must hold for a guest that cannot run: Broken with *reason*, `lima shell` fails at once, ssh through
    ssh.config (no ControlMaster) fails in seconds, `lima stop` kills the VM at once, nothing is left."""
    wait_for(lambda: status(lima, "q")["status"] == "Broken", timeout=60, what="the status to say Broken")
    inst = status(lima, "q")
    assert any(reason in e for e in inst["errors"]), inst["errors"]
    assert reason in run("list").stderr

    t0 = time.monotonic()
    r = run("shell", "q", "--", "true", timeout=30)
    assert r.returncode == 1 and reason in r.stderr and time.monotonic() - t0 < 10, r.stderr
    t0 = time.monotonic()
    ssh = subprocess.run(["ssh", "-F", str(rig.home / "q" / "ssh.config"), "-o", "ControlMaster=no", "-o",
                          "ControlPath=none", "lima-q", "true"], capture_output=True, text=True, timeout=60)
    assert ssh.returncode != 0 and time.monotonic() - t0 < 20, (ssh.stderr, time.monotonic() - t0)

    t0 = time.monotonic()
    r = run("stop", "q", timeout=120)
    assert r.returncode == 0 and "is stopped" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 20, "stop pressed the power button of a VM that cannot power down"
    assert "the power button cannot stop it; killing QEMU" in (rig.home / "q" / "ha.stderr.log").read_text()
    assert no_processes_of(rig.home) == []
    assert quick_status("q")["status"] == "Stopped"


def test_a_guest_that_halted(lima, rig: Rig) -> None:
    """`halt -f` in the guest: QEMU runs on, its CPU halted with interrupts off. It was listed as Running,
    `lima shell` hung, `lima stop` took 181 s."""
    lima("start", "--name", "q", str(_guest_that_will(rig, "halt-now", "halt -f")), ok=True)
    assert status(lima, "q")["status"] == "Running"  # an idle guest halts too, with interrupts on
    lima("shell", "q", "--", "touch", "/tmp/halt-now", ok=True)
    _cannot_run(lima, rig, "the guest has halted")


@pytest.fixture
def small_disk(rig: Rig) -> Iterator[Path]:
    """LIMA_HOME (the hostile path) on a 100 MiB tmpfs: the host disk can really fill up (needs root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,mode=0700", "tmpfs", str(rig.home)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield rig.home
    finally:
        subprocess.run([sys.executable, "-m", "lima_core", "stop", "-f", "q"], capture_output=True, timeout=60)
        subprocess.run(["umount", "-l", str(rig.home)], check=False)


def test_a_guest_paused_on_a_full_disk(lima, rig: Rig, small_disk: Path) -> None:
    """The host disk fills up while the guest writes: QEMU pauses the VM (io-error)."""
    writes = "dd if=/dev/urandom of=/dev/vda bs=1M count=40 conv=fsync"
    lima("start", "--name", "q", str(_guest_that_will(rig, "write-now", writes)), ok=True)
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    subprocess.run(["fallocate", "-l", str(free - (1 << 20)), str(filler)], check=True)
    lima("shell", "q", "--", "touch", "/tmp/write-now", ok=True)
    _cannot_run(lima, rig, "QEMU paused the VM after a disk I/O error (QEMU run state 'io-error'")
    filler.unlink()
    lima("start", "q", ok=True)  # with space again, it boots
    lima("stop", "q", ok=True)
    assert no_processes_of(rig.home) == []
