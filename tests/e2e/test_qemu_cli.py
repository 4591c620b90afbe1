"""The test guest under real QEMU (TCG), driven through the installed `lima` command:
create, start, shell, boot scripts, 9p mounts, snapshots running and stopped, stop,
start again, stop -f, delete — with qemu internal, external, and built by build-external."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from limae2e import BIN, TEMPLATE, status, wait_gone

pytestmark = pytest.mark.vm


def test_qemu_internal_full_lifecycle(lima, lima_env: dict[str, str], tmp_path: Path) -> None:
    home = lima_env["LIMA_HOME"]
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello.txt").write_text("hello through 9p\n")
    mounts = json.dumps([{"location": str(share), "mountPoint": "/mnt/host"}])
    r = lima("create", "--name", "e2e", "--set", f".mounts = {mounts}", str(TEMPLATE))
    assert "lima start e2e" in r.stderr
    r = lima("start", "e2e")
    assert "with internal VM driver 'qemu'" in r.stderr and "READY" in r.stderr
    inst = status(lima, "e2e")
    assert inst["status"] == "Running" and inst["vmType"] == "qemu"

    assert "Linux" in lima("shell", "e2e", "uname", "-a").stdout
    # The host directory reached the guest through the 9p mount of user-data's mounts: rows, with Lima's
    # read-only defaults; the boot scripts all ran.
    assert lima("shell", "e2e", "cat", "/mnt/host/hello.txt").stdout == "hello through 9p\n"
    mounts = lima("shell", "e2e", "cat", "/proc/mounts").stdout
    row = next(line for line in mounts.splitlines() if " /mnt/host " in line)
    assert " 9p ro," in row and ",fscache," in row and "trans=virtio" in row  # /proc/mounts spells cache=fscache so
    log = lima("shell", "e2e", "cat", "/var/log/lima-init.log").stdout
    assert "Executing boot.Linux/07-etc-environment.sh" in log and "boot.sh exited with status 0" in log
    assert lima("shell", "e2e", "sh", "-c", "exit 3", ok=None).returncode == 3

    # QEMU cannot save a running VM while a 9p share is mounted; the error says so.
    r = lima("snapshot", "create", "e2e", "--tag", "live", ok=False)
    assert "lima:" in r.stderr and "Traceback" not in r.stderr

    lima("stop", "e2e")
    assert status(lima, "e2e")["status"] == "Stopped"
    assert wait_gone(home) == []

    # Offline snapshots (qemu-img).
    lima("snapshot", "create", "e2e", "--tag", "off1")
    assert lima("snapshot", "list", "-q", "e2e").stdout.split() == ["off1"]
    lima("snapshot", "apply", "e2e", "--tag", "off1")
    lima("snapshot", "delete", "e2e", "--tag", "off1")
    assert lima("snapshot", "list", "-q", "e2e").stdout.split() == []

    # Start again, without the share, and snapshot while running (memory too).
    lima_yaml = Path(home) / "e2e" / "lima.yaml"
    cfg = yaml.safe_load(lima_yaml.read_text())
    cfg["mounts"] = []
    lima_yaml.write_text(yaml.safe_dump(cfg))
    lima("start", "e2e")
    lima("snapshot", "create", "e2e", "--tag", "s1")
    lima("shell", "e2e", "touch", "/tmp/after-s1")
    assert "s1" in lima("snapshot", "list", "-q", "e2e").stdout.split()
    lima("snapshot", "apply", "e2e", "--tag", "s1")
    # RAM was reverted: the file made after the snapshot (on tmpfs) is gone.
    assert lima("shell", "e2e", "test", "-e", "/tmp/after-s1", ok=None).returncode == 1
    lima("snapshot", "delete", "e2e", "--tag", "s1")

    lima("stop", "-f", "e2e")
    assert status(lima, "e2e")["status"] == "Stopped"
    assert wait_gone(home) == []
    assert (Path(home) / "e2e" / "disk").exists()
    lima("delete", "e2e")
    assert not (Path(home) / "e2e").exists()


def _short_lifecycle(lima, home: str, expect: str) -> None:
    lima("create", "--name", "ext", str(TEMPLATE))
    r = lima("start", "ext")
    assert "with external VM driver 'qemu'" in r.stderr
    assert "Linux" in lima("shell", "ext", "uname", "-a").stdout
    lima("snapshot", "create", "ext", "--tag", "s1")
    assert lima("snapshot", "list", "-q", "ext").stdout.split() == ["s1"]
    driver = json.loads((Path(home) / "ext" / "driver.json").read_text())
    assert driver["location"] == expect
    lima("stop", "ext")
    assert status(lima, "ext")["status"] == "Stopped"
    assert wait_gone(home) == []
    lima("start", "ext")
    lima("stop", "-f", "ext")
    assert wait_gone(home) == []
    lima("delete", "ext")
    assert wait_gone(home) == []


def test_qemu_external_console_script(lima, lima_env: dict[str, str]) -> None:
    lima_env["LIMA_EXTERNAL_DRIVERS"] = "qemu"
    _short_lifecycle(lima, lima_env["LIMA_HOME"], str(BIN / "lima-driver-qemu"))


def test_qemu_external_built_by_build_external(lima, lima_env: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "libexec"
    lima("drivers", "build-external", "qemu", "--dest", str(dest))
    lima_env.update(LIMA_EXTERNAL_DRIVERS="qemu", LIMA_DRIVERS_PATH=str(dest))
    assert json.loads(lima("info").stdout)["vmTypesEx"]["qemu"]["location"] == str(dest / "lima-driver-qemu")
    _short_lifecycle(lima, lima_env["LIMA_HOME"], str(dest / "lima-driver-qemu"))
