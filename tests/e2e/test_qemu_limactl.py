"""limactl's everyday commands against the test guest under real QEMU, through the installed `lima`:
create with flags, an additional disk attached, locked and mounted in the guest, shell in the host's
directory and with VAR=value words, copy both ways, a SOCKS tunnel that carries a connection, watch,
edit + restart, clone that boots, rename.

The tiny guest has no sfdisk, so the disk is partitioned and formatted on the host (`lima disk import`)
and attached with `format: false`: the guest side mounts it as Lima's 05-lima-disks.sh does on every
boot. Formatting on first use (sfdisk, mkfs) waits for the cloud-init test guest ("image B")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from limae2e import BIN, TEMPLATE, qemu_processes

pytestmark = pytest.mark.vm


def _run(lima_env: dict[str, str], *args: str, cwd: Path | None = None, ok: bool = True,
         timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "lima"), *args], env=lima_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if ok:
        assert proc.returncode == 0, f"lima {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
    return proc


def _formatted_disk(path: Path, content: Path) -> None:
    """A 64 MiB raw disk with one partition holding an ext4 file system labelled lima-data, made from the
    directory *content*."""
    for tool in ("sfdisk", "mkfs.ext4"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is needed to prepare the disk on the host")
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["sfdisk", "--quiet", str(path)], input="label: dos\nstart=2048, type=83\n", text=True, check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "lima-data", "-d", str(content), "-E", "offset=1048576",
                    str(path), str((64 << 20) - (1 << 20) >> 10) + "k"], check=True, capture_output=True)


def _socks_banner(port: int, host: str = "127.0.0.1", dest_port: int = 22) -> bytes:
    """Connect through the SOCKS5 proxy at 127.0.0.1:*port* to host:dest_port (as the guest sees it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + dest_port.to_bytes(2, "big"))
        reply = s.recv(10)
        assert reply[:2] == b"\x05\x00", reply
        return s.recv(64)


def test_limactl_commands_against_the_test_guest(lima_env: dict[str, str], tmp_path: Path) -> None:
    home = Path(lima_env["LIMA_HOME"])
    share = tmp_path / "share"
    (share / "sub dir").mkdir(parents=True)
    image, content = tmp_path / "data.raw", tmp_path / "content"
    (content / "rw").mkdir(parents=True)
    (content / "rw").chmod(0o1777)  # for the guest user (the file system's root is root's)
    (content / "from-host.txt").write_text("made on the host\n")
    _formatted_disk(image, content)

    _run(lima_env, "disk", "import", "data", str(image))
    _run(lima_env, "create", "--name", "e2e", "--cpus", "1", "--memory", "0.5", f"--mount={share}:w",
         "--set", '.additionalDisks = [{"name": "data", "format": false, "fsType": "ext4"}]', str(TEMPLATE))
    r = _run(lima_env, "start", "e2e", timeout=600)
    assert "READY" in r.stderr
    assert json.loads(_run(lima_env, "disk", "ls", "--json").stdout)["instance"] == "e2e"  # locked to it

    # the disk: attached as vdb, mounted by the guest's boot script at /mnt/lima-data
    mounts = _run(lima_env, "shell", "e2e", "cat", "/proc/mounts").stdout
    assert any(line.startswith("/dev/vdb1 /mnt/lima-data ext4 ") for line in mounts.splitlines()), mounts
    assert _run(lima_env, "shell", "e2e", "cat", "/mnt/lima-data/from-host.txt").stdout == "made on the host\n"
    _run(lima_env, "shell", "e2e", "sh", "-c", "echo kept > /mnt/lima-data/rw/hello && sync")

    # shell: the host's directory through the mount, --workdir, VAR=value words, the exit status
    assert _run(lima_env, "shell", "e2e", "pwd", cwd=share / "sub dir").stdout.strip() == str(share / "sub dir")
    assert _run(lima_env, "shell", "--workdir", "/tmp", "e2e", "pwd").stdout.strip() == "/tmp"
    out = _run(lima_env, "shell", "e2e", "--", "FOO=bar", "BAZ=two words", "env").stdout.splitlines()
    assert "FOO=bar" in out and "BAZ=two words" in out
    assert _run(lima_env, "shell", "e2e", "sh", "-c", "exit 7", ok=False).returncode == 7
    r = _run(lima_env, "shell", "--workdir", "/nonexistent", "e2e", "true", ok=False)
    assert r.returncode == 1

    # copy both ways (scp over the instance's ssh.config), files and directories
    (tmp_path / "up.txt").write_text("to the guest\n")
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "a" / "b.txt").write_text("deep\n")
    _run(lima_env, "copy", str(tmp_path / "up.txt"), "e2e:/tmp/up.txt")
    assert _run(lima_env, "shell", "e2e", "cat", "/tmp/up.txt").stdout == "to the guest\n"
    _run(lima_env, "cp", "-r", str(tmp_path / "tree"), "e2e:/tmp/")
    _run(lima_env, "shell", "e2e", "sh", "-c", "echo from the guest > /tmp/down.txt")
    _run(lima_env, "copy", "e2e:/tmp/down.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "from the guest\n"
    _run(lima_env, "copy", "-r", "e2e:/tmp/tree", str(tmp_path / "back"))
    assert (tmp_path / "back" / "a" / "b.txt").read_text() == "deep\n"
    assert _run(lima_env, "copy", "e2e:/nonexistent", str(tmp_path), ok=False).returncode != 0

    # a SOCKS tunnel through the guest: the guest's own SSH server answers at its 127.0.0.1:22
    r = _run(lima_env, "tunnel", "--socks-port", str(_free_port()), "e2e")
    port = int(r.stdout.split("socks5h://127.0.0.1:")[1].split("`")[0])
    try:
        assert _socks_banner(port).startswith(b"SSH-")
    finally:
        for pid_file in (home / "e2e").glob("tunnel-*.pid"):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)

    # watch while an edit restarts the instance with 2 CPUs
    watch = subprocess.Popen([str(BIN / "lima"), "watch", "--json", "e2e"], env=lima_env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(2)
        r = _run(lima_env, "edit", "e2e", "--cpus", "2", "--start", timeout=600)
        assert "READY" in r.stderr
    finally:
        watch.send_signal(signal.SIGINT)
        seen = watch.communicate(timeout=30)[0]
    kinds = [next(iter(json.loads(line)["event"]["status"]), "") for line in seen.splitlines()]
    assert "exiting" in kinds and "running" in kinds, seen
    assert _run(lima_env, "shell", "e2e", "nproc").stdout.strip() == "2"
    assert _run(lima_env, "shell", "e2e", "cat", "/mnt/lima-data/rw/hello").stdout == "kept\n"  # the disk kept it

    _run(lima_env, "stop", "e2e")
    assert json.loads(_run(lima_env, "disk", "ls", "--json").stdout)["instance"] == ""  # unlocked

    # clone boots; rename
    _run(lima_env, "clone", "e2e", "e2c", "--set", ".additionalDisks = []", "--mount-none", "--no-start")
    r = _run(lima_env, "start", "e2c", timeout=600)
    assert "READY" in r.stderr
    assert "Linux" in _run(lima_env, "shell", "e2c", "uname").stdout
    _run(lima_env, "stop", "-f", "e2c")
    _run(lima_env, "rename", "e2c", "e2r", "--no-start")
    names = _run(lima_env, "list", "-q").stdout.split()
    assert names == ["e2e", "e2r"]
    _run(lima_env, "delete", "e2r")
    _run(lima_env, "delete", "e2e")
    _run(lima_env, "disk", "delete", "data")
    assert qemu_processes(str(home)) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
