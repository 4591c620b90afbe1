"""Helpers for lima-driver-qemu's tests: the test guest, instance directories, cidata, SSH."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from lima_core import LIMA_COMPAT_VERSION, cidata, users
from lima_core.host import DriverHost
from lima_core.limatype import Instance, LimaYAML

REPO = Path(__file__).resolve().parents[3]
GUEST_ENV = "LIMA_TEST_GUEST_DIR"
KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1"
SSH_TIMEOUT = 60.0


def guest_dir() -> Path | None:
    d = Path(os.environ.get(GUEST_ENV) or REPO / ".cache" / "test-guest" / "current")
    if all((d / f).is_file() for f in ("vmlinux", "initrd.img", "disk.qcow2")):
        return d.resolve()
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guest_config(**extra: Any) -> dict[str, Any]:
    """templates/test-guest.yaml, as the host would load it."""
    return {"vmType": "qemu", "arch": "x86_64", "cpus": 1, "memory": "512MiB", "disk": "1GiB",
            "images": [{"location": "disk.qcow2", "arch": "x86_64",
                        "kernel": {"location": "vmlinux", "cmdline": KERNEL_CMDLINE},
                        "initrd": {"location": "initrd.img"}}],
            "firmware": {"legacyBIOS": True}, "mounts": [], "video": {"display": "none"}, **extra}


def place_guest(d: Path, guest: Path) -> None:
    """What the host's create puts in an instance dir: image, kernel, kernel.cmdline, initrd, lima-version."""
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(guest / "disk.qcow2", d / "image")
    (d / "kernel").symlink_to(guest / "vmlinux")
    (d / "initrd").symlink_to(guest / "initrd.img")
    (d / "kernel.cmdline").write_text(KERNEL_CMDLINE)
    (d / "lima-version").write_text(LIMA_COMPAT_VERSION + "\n")


def new_instance(d: Path, config: dict[str, Any], port: int = 0) -> Instance:
    return Instance(name=d.name, hostname=f"lima-{d.name}", dir=str(d), vm_type="qemu", arch="x86_64",
                    config=LimaYAML.from_json(config), ssh_local_port=port, ssh_address="127.0.0.1")


def write_cidata(host: DriverHost, inst: Instance, key: Path) -> str:
    """Generate cidata.iso as the host agent does; returns this boot's instance id."""
    assert inst.config is not None
    user = users.guest_user(inst.config)
    made = cidata.generate(inst, host.info(), host.boot_scripts(), user,
                           [Path(f"{key}.pub").read_text().strip()])
    return made.instance_id


class Guest:
    """SSH into a booted test guest."""

    def __init__(self, key: Path, port: int, user: str) -> None:
        self.key, self.port, self.user = key, port, user

    def argv(self, command: str, user: str | None = None) -> list[str]:
        return ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", "-i", str(self.key), "-p", str(self.port),
                f"{user or self.user}@127.0.0.1", command]

    def run(self, command: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(command, user), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def wait(self, timeout: float = SSH_TIMEOUT, alive: Any = None) -> float:
        """Wait for an SSH login (banner first: slirp accepts TCP before the guest listens); seconds waited."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            assert alive is None or alive(), "qemu exited before SSH came up"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(1)
                    if s.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        while time.monotonic() < deadline:
            if self.run("true", check=False).returncode == 0:
                return time.monotonic() - start
            time.sleep(0.25)
        raise AssertionError(f"no SSH login on port {self.port} within {timeout:g} s")


def token() -> str:
    return secrets.token_hex(8)
