#!/usr/bin/env python3
"""A fake ``wsl.exe`` for tests: distro state in a folder, answers as WSL does.

Select it for the driver with ``LIMA_WSL_EXE=<path>`` (see :func:`install`);
it keeps its state in ``$FAKE_WSL_STATE`` (a folder):

- ``distros.json``: ``{"default": name, "distros": [{"name", "state", "version", "dir", "tarball"}]}``.
  A new folder starts with one stopped distribution, ``Ubuntu``, the default
  (as after ``wsl --install``); write ``{"distros": []}`` for a WSL without any;
- ``behaviour.json`` (optional): ``states`` (state word -> what to print, e.g.
  ``{"Running": "Wird ausgeführt"}``), ``no_distros`` (``"not-found"`` prints
  the ``Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND`` form and exits -1, ``"no-kernel"``
  the older form and exits 0), ``ip``, ``shell`` (``"busybox"``: no bash and a
  busybox hostname), ``hostname_i`` (what ``hostname -i`` prints), ``boot_exit``
  (exit status of the boot command), ``fail`` (option -> message: that
  command fails);
- ``calls.jsonl``: one JSON argument list per invocation;
- ``keep-alive.<distro>``: written once a keep-alive command holds the distro running.

Implemented: ``--import NAME DIR TARFILE [--version 2]``, ``--list --verbose``
(``-l -v``), ``--distribution NAME`` / ``-d NAME [command ...]``,
``--terminate NAME``, ``--unregister NAME``; commands in a distro must come
with ``--exec`` (``-e``), as the driver always passes it. wsl.exe's own messages are
UTF-16LE with CRLF line ends, like the real one; a command run in a distro
answers in UTF-8. Commands in a distro are recognised, never executed:
SSH address discovery, ``wslpath -u``, the boot script (``bash <path>``) and the
keep-alive ``sleep`` (blocks until the distro stops).

The boot command also plays the guest's part for lima-core's fake ``ssh``
(:mod:`lima_core.testing.fakessh`): it writes ``fakevm.running`` and
``fakevm-root/run/lima-boot-done`` (this boot's instance id, from
``cidata/lima.env``) into the distro's install directory, which is the
instance directory; stopping the distro removes ``fakevm.running``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lima_core import atomicfile

STATE_ENV = "FAKE_WSL_STATE"
NOT_FOUND = "There is no distribution with the supplied name.\r\nError code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n"
OK = "The operation completed successfully. \r\n"
NO_DISTROS_NOT_FOUND = ("Windows Subsystem for Linux has no installed distributions.\r\n\r\n"
                        "Use 'wsl.exe --list --online' to list available distributions\r\n"
                        "and 'wsl.exe --install <Distro>' to install.\r\n\r\n"
                        "Distributions can also be installed by visiting the Microsoft Store:\r\n"
                        "https://aka.ms/wslstore\r\nError code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND\r\n")
NO_DISTROS_NO_KERNEL = ("Windows Subsystem for Linux has no installed distributions.\r\n"
                        "Distributions can be installed by visiting the Microsoft Store:\r\n"
                        "https://aka.ms/wslstore\r\n")
HOSTNAME_I = "hostname -I | cut -d ' ' -f1"
IP_ROUTE = "ip route get 1 | awk '{gsub(\"^.*src \",\"\"); print $1; exit}'"
WSLPATH = 'wslpath -u "$1"'
KEEP_ALIVE = "nohup sleep 2147483647d >/dev/null 2>&1"


def install(bin_dir: Path, name: str = "wsl.exe") -> Path:
    """Write an executable *name* into *bin_dir* that runs this fake with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\nimport sys\nfrom lima_driver_wsl2.testing.fakewsl import main\n"
                    "sys.exit(main())\n")
    path.chmod(0o755)
    return path


class State:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "distros.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text()) if self.path.exists() else {
                "default": "Ubuntu", "distros": [{"name": "Ubuntu", "state": "Stopped", "version": 2}]}
            yield data
            atomicfile.write(self.path, json.dumps(data, indent=1))

    def behaviour(self) -> dict[str, Any]:
        path = self.folder / "behaviour.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def record(self, argv: list[str]) -> None:
        with open(self.folder / "calls.jsonl", "a") as f:
            f.write(json.dumps(argv) + "\n")


GUEST_RUNNING = "fakevm.running"  # lima_core.testing.fakevm's markers, read by lima_core.testing.fakessh
GUEST_ROOT = "fakevm-root"


def _guest_booted(distro: dict[str, Any]) -> None:
    """What boot.sh leaves in the guest, where lima-core's fake ssh looks for it."""
    if not distro.get("dir"):
        return
    inst_dir = Path(distro["dir"])
    iid = ""
    with contextlib.suppress(OSError):
        for line in (inst_dir / "cidata" / "lima.env").read_text().splitlines():
            if line.startswith("LIMA_CIDATA_IID="):
                iid = line.split("=", 1)[1].strip("'\"")
    run = inst_dir / GUEST_ROOT / "run"
    run.mkdir(parents=True, exist_ok=True)
    for name in ("lima-ssh-ready", "lima-boot-done"):
        (run / name).write_text(iid + "\n")
    (inst_dir / GUEST_RUNNING).write_text(f"{os.getpid()}\n")


def _guest_stopped(distro: dict[str, Any]) -> None:
    if distro.get("dir"):
        (Path(distro["dir"]) / GUEST_RUNNING).unlink(missing_ok=True)


def _find(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((d for d in data["distros"] if d["name"] == name), None)


def _say(text: str, code: int = 0) -> int:
    """wsl.exe's own output: UTF-16LE."""
    sys.stdout.buffer.write(text.encode("utf-16-le"))
    sys.stdout.flush()
    return code


def _guest(text: str, code: int = 0) -> int:
    """A guest program's output: UTF-8."""
    sys.stdout.buffer.write(text.encode())
    sys.stdout.flush()
    return code


def list_verbose(data: dict[str, Any], behaviour: dict[str, Any]) -> int:
    if not data["distros"]:
        if behaviour.get("no_distros") == "no-kernel":
            return _say(NO_DISTROS_NO_KERNEL, 0)
        return _say(NO_DISTROS_NOT_FOUND, -1)
    words = behaviour.get("states", {})
    rows = [(d["name"], words.get(d["state"], d["state"]), str(d["version"])) for d in data["distros"]]
    name_w = max(len("NAME"), *(len(r[0]) for r in rows)) + 4
    state_w = max(len("STATE") + 11, *(len(r[1]) + 4 for r in rows))
    lines = [f"  {'NAME':<{name_w}}{'STATE':<{state_w}}VERSION"]
    for name, state, version in rows:
        mark = "*" if name == data.get("default") else " "
        lines.append(f"{mark} {name:<{name_w}}{state:<{state_w}}{version}")
    return _say("\r\n".join(lines) + "\r\n")


def in_distro(state: State, name: str, command: list[str]) -> int:
    behaviour = state.behaviour()
    with state.locked() as data:
        distro = _find(data, name)
        if distro is None:
            return _say(NOT_FOUND, -1)
        distro["state"] = "Running"
    if not command:
        return 0  # an interactive shell that read end-of-file
    busybox = behaviour.get("shell") == "busybox"
    ip = behaviour.get("ip", "172.20.0.2")
    if command[0] == "bash" and busybox:
        return _guest("<3>WSL ERROR: CreateProcessCommon: execvpe(bash) failed: No such file or directory\n", 1)
    if command == ["bash", "-c", HOSTNAME_I]:
        return _guest(f"{ip} \n")
    if command == ["sh", "-c", IP_ROUTE]:
        return _guest(f"{ip}\n")
    if command == ["hostname", "-i"]:
        return _guest(behaviour.get("hostname_i", "127.0.1.1") + "\n")
    if command[:3] == ["bash", "-c", WSLPATH] and len(command) == 5:
        return _guest(command[4].replace("\\", "/") + "\n")
    if command == ["bash", "-c", KEEP_ALIVE]:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        (state.folder / f"keep-alive.{name}").write_text(f"{os.getpid()}\n")  # tests wait for this
        while True:
            with state.locked() as data:
                distro = _find(data, name)
                if distro is None or distro["state"] != "Running":
                    return 0
            time.sleep(0.1)
    if command[:1] == ["bash"] and len(command) == 2 and command[1].startswith("/"):
        code = int(behaviour.get("boot_exit", 0))
        if code == 0:
            with state.locked() as data:
                distro = _find(data, name)
                if distro is not None and distro["state"] == "Running":
                    _guest_booted(distro)
        return _guest("fake boot\n", code)
    return _guest(f"fake wsl.exe: no answer for {command!r}\n", 127)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    state = State(Path(os.environ.get(STATE_ENV) or Path.home() / ".fake-wsl"))
    state.record(argv)
    behaviour = state.behaviour()
    if argv and argv[0] in behaviour.get("fail", {}):
        return _say(behaviour["fail"][argv[0]] + "\r\n", -1)
    if argv in (["--list", "--verbose"], ["-l", "-v"], ["-l", "--verbose"], ["--list", "-v"]):
        with state.locked() as data:
            return list_verbose(data, behaviour)
    if argv[:1] == ["--import"] and len(argv) in (4, 6) and (len(argv) == 4 or argv[4] == "--version"):
        name, install_dir, tarball = argv[1:4]
        if not Path(tarball).is_file():
            return _say("The system cannot find the file specified. \r\nError code: Wsl/Service/RegisterDistro/"
                        "ERROR_FILE_NOT_FOUND\r\n", -1)
        with state.locked() as data:
            if _find(data, name) is not None:
                return _say("A distribution with the supplied name already exists.\r\nError code: "
                            "Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS\r\n", -1)
            Path(install_dir).mkdir(parents=True, exist_ok=True)
            (Path(install_dir) / "ext4.vhdx").write_bytes(b"fake vhdx\n")
            data["distros"].append({"name": name, "state": "Stopped", "version": 2, "dir": install_dir,
                                    "tarball": tarball})
            if not data.get("default"):
                data["default"] = name
        return _say("Import in progress, this may take a few minutes.\r\n" + OK)
    if argv[:1] in (["--terminate"], ["-t"]) and len(argv) == 2:
        with state.locked() as data:
            distro = _find(data, argv[1])
            if distro is None:
                return _say(NOT_FOUND, -1)
            distro["state"] = "Stopped"
            _guest_stopped(distro)
        return _say(OK)
    if argv[:1] == ["--unregister"] and len(argv) == 2:
        with state.locked() as data:
            distro = _find(data, argv[1])
            if distro is None:
                return _say(NOT_FOUND, -1)
            data["distros"].remove(distro)
            _guest_stopped(distro)
            if distro.get("dir"):
                (Path(distro["dir"]) / "ext4.vhdx").unlink(missing_ok=True)
            if data.get("default") == argv[1]:
                data["default"] = data["distros"][0]["name"] if data["distros"] else None
        return _say("Unregistering.\r\n" + OK)
    if argv[:1] in (["-d"], ["--distribution"]) and len(argv) >= 2:
        command = argv[2:]
        if command[:1] in (["--exec"], ["-e"]):
            command = command[1:]
        elif command:
            return _say("fake wsl.exe: a command without --exec would go through the login shell; "
                        "lima-driver-wsl2 always passes --exec\r\n", -1)
        return in_distro(state, argv[1], command)
    return _say(f"Invalid command line argument: {' '.join(argv)}\r\nError code: Wsl/E_INVALIDARG\r\n", -1)


if __name__ == "__main__":
    sys.exit(main())
