#!/usr/bin/env python3
"""A fake ``wsl.exe`` for tests: distro state in a folder, answering as WSL does, noise included.

Select it for the driver with ``LIMA_WSL_EXE=<path>`` (see :func:`install`);
it keeps its state in ``$FAKE_WSL_STATE`` (a folder):

- ``distros.json``: ``{"default": name, "default_version": 2, "distros": [{"name", "state", "version", "dir",
  "tarball"}]}``. A new folder starts with one stopped WSL 2 distribution,
  ``Ubuntu``, the default (as after ``wsl --install``); write ``{"distros": []}``
  for a WSL without any; ``default_version`` is what ``wsl --set-default-version``
  chose (2 unless set);
- ``behaviour.json`` (optional): ``states`` (state word -> what to print, e.g.
  ``{"Running": "Wird ausgeführt"}``), ``legacy`` (an inbox wsl.exe that ignores
  ``WSL_UTF8`` and prints its error codes), ``windows_path`` (the Windows PATH
  entries Linux cannot translate, complained about at every launch; two by
  default, ``[]`` for none), ``warning`` (a warning wsl.exe prints on stderr
  at every call, e.g. the localhost proxy one), ``ip``, ``shell``
  (``"busybox"``: no bash and a busybox hostname), ``hostname_i`` (what
  ``hostname -i`` prints), ``boot_exit`` (exit status of the boot command),
  ``fail`` (option -> message: that command fails);
- ``calls.jsonl``: one JSON argument list per invocation; ``env.jsonl``: the
  ``WSL_UTF8`` each invocation saw;
- ``keep-alive.<distro>``: written once a keep-alive command holds the distro running.

What it does as the real one does (microsoft/WSL ``WslClient.cpp``):

- wsl.exe's own messages, its errors included, go to stdout, in UTF-16LE
  with CRLF line ends, or in UTF-8 when ``WSL_UTF8=1`` (unless ``legacy``);
  warnings go to stderr in the same encoding;
- with no distribution, ``--list`` prints today's text ("... has no installed
  distributions. You can resolve this by installing a distribution ...")
  without an error code, and exits with -1 (255);
- every launch in a distro first writes the init's
  ``<3>WSL (N) ERROR: UtilTranslatePathList:2866: Failed to translate <dir>``
  lines to stderr, in UTF-8, one per untranslatable PATH entry;
- ``--import NAME DIR TARFILE [--version N]``: without ``--version`` the
  distro gets the default version;
- ``-d NAME`` with no command runs the default user's login shell, which
  reads commands from stdin until end-of-file (and so waits while stdin is
  open); commands in a distro must come with ``--exec`` (``-e``), as the
  driver always passes it (without it wsl.exe hands the joined line to the
  shell).

Implemented: ``--import``, ``--list --verbose`` (``-l -v``),
``--distribution NAME`` / ``-d NAME [--exec command ...]``, ``--terminate``,
``--unregister``. Commands in a distro are recognised, never executed: SSH
address discovery, ``wslpath -u``, the boot script (``bash <path>``) and the
keep-alive ``sleep`` (blocks until the distro stops).

The boot command also plays the guest's part for lima-core's fake ``ssh``
(:mod:`lima_core.testing.fakessh`): it writes ``fakevm.running`` and
``fakevm-root/run/lima-boot-done`` (this boot's instance id, from
``cidata/lima.env``) into the distro's install directory, which is the
instance directory, and starts ``cidata/lima-guestagent`` there
(:mod:`lima_core.testing.fakeguest`); stopping the distro removes
``fakevm.running`` and stops the agent.
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
from lima_core.testing import fakeguest

STATE_ENV = "FAKE_WSL_STATE"
OK = "The operation completed successfully. \r\n"
NOT_FOUND = "There is no distribution with the supplied name."
NOT_FOUND_CODE = "Wsl/Service/WSL_E_DISTRO_NOT_FOUND"
NO_DISTROS = ("Windows Subsystem for Linux has no installed distributions.\r\n"
              "You can resolve this by installing a distribution with the instructions below:\r\n\r\n"
              "Use 'wsl.exe --list --online' to list available distributions\r\n"
              "and 'wsl.exe --install <Distro>' to install.\r\n")
#: what wsl.exe printed before it left the error code out (Lima's test for it)
NO_DISTROS_LEGACY = ("Windows Subsystem for Linux has no installed distributions.\r\n\r\n"
                     "Use 'wsl.exe --list --online' to list available distributions\r\n"
                     "and 'wsl.exe --install <Distro>' to install.\r\n\r\n"
                     "Distributions can also be installed by visiting the Microsoft Store:\r\n"
                     "https://aka.ms/wslstore\r\nError code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND\r\n")
WINDOWS_PATH = [r"C:\Program Files\PowerShell\7", r"D:\Tools\bin"]
PATH_NOISE = "<3>WSL ({pid}) ERROR: UtilTranslatePathList:2866: Failed to translate {entry}\n"
HOSTNAME_I = "hostname -I | cut -d ' ' -f1"
IP_ROUTE = "ip route get 1 | awk '{gsub(\"^.*src \",\"\"); print $1; exit}'"
WSLPATH = 'wslpath -u "$1"'
KEEP_ALIVE = "nohup sleep 2147483647d >/dev/null 2>&1"
FAILED = -1  # wsl.exe's own failures (255 as a process exit status)


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
        with open(self.folder / "env.jsonl", "a") as f:  # the environment variables wsl.exe reads
            f.write(json.dumps({"WSL_UTF8": os.environ.get("WSL_UTF8")}) + "\n")


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
    agent = inst_dir / "cidata" / "lima-guestagent"
    if agent.is_file():
        fakeguest.start_agent(inst_dir, agent.read_bytes())
    (inst_dir / GUEST_RUNNING).write_text(f"{os.getpid()}\n")


def _guest_stopped(distro: dict[str, Any]) -> None:
    if distro.get("dir"):
        (Path(distro["dir"]) / GUEST_RUNNING).unlink(missing_ok=True)
        fakeguest.stop_agent(Path(distro["dir"]))


def _find(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((d for d in data["distros"] if d["name"] == name), None)


class Out:
    """wsl.exe's own output: UTF-16LE, or UTF-8 when WSL_UTF8=1 and wsl.exe honours it."""

    def __init__(self, behaviour: dict[str, Any]) -> None:
        self.legacy = bool(behaviour.get("legacy"))
        self.utf8 = os.environ.get("WSL_UTF8") == "1" and not self.legacy

    def _encode(self, text: str) -> bytes:
        return text.encode("utf-8" if self.utf8 else "utf-16-le")

    def say(self, text: str, code: int = 0) -> int:
        sys.stdout.buffer.write(self._encode(text))
        sys.stdout.flush()
        return code

    def error(self, message: str, code_name: str) -> int:
        """An error as WslClient::Main prints it: the message, then the error code, on stdout."""
        return self.say(f"{message}\r\nError code: {code_name}\r\n", FAILED)

    def warn(self, text: str) -> None:
        sys.stderr.buffer.write(self._encode(text + "\r\n"))
        sys.stderr.flush()


def _guest(text: str, code: int = 0) -> int:
    """A guest program's output: UTF-8."""
    sys.stdout.buffer.write(text.encode())
    sys.stdout.flush()
    return code


def list_verbose(data: dict[str, Any], behaviour: dict[str, Any], out: Out) -> int:
    if not data["distros"]:
        return out.say(NO_DISTROS_LEGACY if out.legacy else NO_DISTROS, FAILED)
    words = behaviour.get("states", {})
    rows = [(d["name"], words.get(d["state"], d["state"]), str(d["version"])) for d in data["distros"]]
    name_w = max(len("NAME"), *(len(r[0]) for r in rows)) + 4
    state_w = max(len("STATE") + 11, *(len(r[1]) + 4 for r in rows))
    lines = [f"  {'NAME':<{name_w}}{'STATE':<{state_w}}VERSION"]
    for name, state, version in rows:
        mark = "*" if name == data.get("default") else " "
        lines.append(f"{mark} {name:<{name_w}}{state:<{state_w}}{version}")
    return out.say("\r\n".join(lines) + "\r\n")


def _launch_noise(behaviour: dict[str, Any]) -> None:
    """The distro init's complaints about the Windows PATH, on stderr, at every launch."""
    for entry in behaviour.get("windows_path", WINDOWS_PATH):
        sys.stderr.buffer.write(PATH_NOISE.format(pid=os.getpid() % 100, entry=entry).encode())
    sys.stderr.flush()


def login_shell(command_input: bytes) -> int:
    """The default user's login shell reading its commands from stdin: ``exit N`` ends it."""
    for line in command_input.decode(errors="replace").splitlines():
        words = line.split()
        if words[:1] == ["exit"]:
            return int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
    return 0


def in_distro(state: State, name: str, command: list[str], out: Out) -> int:
    behaviour = state.behaviour()
    with state.locked() as data:
        distro = _find(data, name)
        if distro is None:
            return out.error(NOT_FOUND, NOT_FOUND_CODE)
        distro["state"] = "Running"
    _launch_noise(behaviour)
    if not command:
        return login_shell(sys.stdin.buffer.read())  # waits for end-of-file, as a shell does
    busybox = behaviour.get("shell") == "busybox"
    ip = behaviour.get("ip", "172.20.0.2")
    if command[0] == "bash" and busybox:
        sys.stderr.write("<3>WSL (1) ERROR: CreateProcessCommon:640: execvpe(bash) failed: No such file or directory\n")
        return 1
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


def import_distro(state: State, args: list[str], out: Out) -> int:
    """``--import NAME DIR TARFILE [--version N]``."""
    version: int | None = None
    if len(args) == 5 and args[3] == "--version" and args[4] in ("1", "2"):
        version = int(args[4])
    elif len(args) != 3:
        return out.error("Invalid command line argument: --import " + " ".join(args), "Wsl/E_INVALIDARG")
    name, install_dir, tarball = args[:3]
    if not Path(tarball).is_file():
        return out.error("The system cannot find the file specified. ",
                         "Wsl/Service/RegisterDistro/ERROR_FILE_NOT_FOUND")
    with state.locked() as data:
        if _find(data, name) is not None:
            return out.error("A distribution with the supplied name already exists.",
                             "Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS")
        Path(install_dir).mkdir(parents=True, exist_ok=True)
        if version is None:
            version = int(data.get("default_version", 2))
        if version == 2:
            (Path(install_dir) / "ext4.vhdx").write_bytes(b"fake vhdx\n")
        data["distros"].append({"name": name, "state": "Stopped", "version": version, "dir": install_dir,
                                "tarball": tarball})
        if not data.get("default"):
            data["default"] = name
    return out.say("Import in progress, this may take a few minutes.\r\n" + OK)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    state = State(Path(os.environ.get(STATE_ENV) or Path.home() / ".fake-wsl"))
    state.record(argv)
    behaviour = state.behaviour()
    out = Out(behaviour)
    if behaviour.get("warning"):
        out.warn(behaviour["warning"])
    if argv and argv[0] in behaviour.get("fail", {}):
        return out.say(behaviour["fail"][argv[0]] + "\r\n", FAILED)
    if argv in (["--list", "--verbose"], ["-l", "-v"], ["-l", "--verbose"], ["--list", "-v"]):
        with state.locked() as data:
            return list_verbose(data, behaviour, out)
    if argv[:1] == ["--import"]:
        return import_distro(state, argv[1:], out)
    if argv[:1] in (["--terminate"], ["-t"]) and len(argv) == 2:
        with state.locked() as data:
            distro = _find(data, argv[1])
            if distro is None:
                return out.error(NOT_FOUND, NOT_FOUND_CODE)
            distro["state"] = "Stopped"
            _guest_stopped(distro)
        return out.say(OK)
    if argv[:1] == ["--unregister"] and len(argv) == 2:
        with state.locked() as data:
            distro = _find(data, argv[1])
            if distro is None:
                return out.error(NOT_FOUND, NOT_FOUND_CODE)
            data["distros"].remove(distro)
            _guest_stopped(distro)
            if distro.get("dir"):
                (Path(distro["dir"]) / "ext4.vhdx").unlink(missing_ok=True)
            if data.get("default") == argv[1]:
                data["default"] = data["distros"][0]["name"] if data["distros"] else None
        return out.say("Unregistering.\r\n" + OK)
    if argv[:1] in (["-d"], ["--distribution"]) and len(argv) >= 2:
        command = argv[2:]
        if command[:1] in (["--exec"], ["-e"]):
            command = command[1:]
        elif command:
            return out.say("fake wsl.exe: a command without --exec would go through the login shell; "
                           "lima-driver-wsl2 always passes --exec\r\n", FAILED)
        return in_distro(state, argv[1], command, out)
    return out.error(f"Invalid command line argument: {' '.join(argv)}", "Wsl/E_INVALIDARG")


if __name__ == "__main__":
    sys.exit(main())
