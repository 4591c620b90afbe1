"""Running ``wsl.exe``: which one, how its output is decoded, and the commands the driver uses.

Which: ``$LIMA_WSL_EXE`` when set (a path, or a name looked up on PATH),
otherwise ``wsl.exe`` on PATH. Every command is an argument list; names and
paths are passed as separate arguments, never spliced into a shell string;
commands in a distro go through ``--exec`` so they stay argument lists there too.

Decoding: ``wsl.exe``'s own messages (``--list``, ``--import``, errors) are
UTF-16LE, as Lima reads them; output is taken as UTF-8 instead only when it
holds no NUL byte at all (``WSL_UTF8=1`` makes wsl.exe print UTF-8). What a
command run inside a distro prints is the guest program's own output, UTF-8.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Sequence

from lima_core.errors import DriverError, DriverTimeout

WSL_EXE_ENV = "LIMA_WSL_EXE"
DEFAULT_WSL_EXE = "wsl.exe"
COMMAND_TIMEOUT = 120.0
IMPORT_TIMEOUT = 1800.0


def distro_name(instance_name: str) -> str:
    """The WSL distribution of an instance: ``lima-<name>``."""
    return f"lima-{instance_name}"


def configured() -> bool:
    """True when ``$LIMA_WSL_EXE`` names the wsl.exe to use."""
    return bool(os.environ.get(WSL_EXE_ENV))


def executable() -> str:
    """The wsl.exe to run; DriverError naming the setting when it cannot be found."""
    name = os.environ.get(WSL_EXE_ENV) or DEFAULT_WSL_EXE
    found = shutil.which(name)
    if found is None:
        where = f"${WSL_EXE_ENV}={name}" if configured() else f"{DEFAULT_WSL_EXE} (on PATH)"
        raise DriverError(f"cannot run {where}: not found; WSL 2 is installed with `wsl --install`")
    return found


def decode(data: bytes) -> str:
    """wsl.exe's own output as text (see the module docstring)."""
    if data.startswith(b"\xff\xfe"):
        data = data[2:]
    if data and b"\x00" not in data:
        return data.decode("utf-8", errors="replace")
    return data.decode("utf-16-le", errors="replace")


@dataclasses.dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """`wsl.exe --x y` exited with status N (out="...")."""
        shown = " ".join(("wsl.exe", *self.args[1:]))
        return f"`{shown}` exited with status {self.code} (out={self.output.strip()!r})"


def run(args: Sequence[str], *, utf16: bool = True, timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run ``wsl.exe *args`` to completion, stdout and stderr combined, stdin closed."""
    argv = (executable(), *args)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DriverTimeout(f"`wsl.exe {' '.join(args)}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    text = decode(proc.stdout) if utf16 else proc.stdout.decode("utf-8", errors="replace")
    return Result(argv, proc.returncode, text)


def popen(args: Sequence[str]) -> subprocess.Popen:
    """Start ``wsl.exe *args`` in the background (stdout and stderr combined, stdin closed)."""
    argv = (executable(), *args)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def _checked(args: Sequence[str], what: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    result = run(args, timeout=timeout)
    if not result.ok:
        raise DriverError(f"failed to {what}: {result.describe()}")
    return result


# -- the commands -----------------------------------------------------------------------------------


def list_verbose() -> Result:
    return run(["--list", "--verbose"])


def import_distro(distro: str, install_dir: str, tarball: str) -> None:
    _checked(["--import", distro, install_dir, tarball], f"import {tarball} as {distro}", IMPORT_TIMEOUT)


def start_distro(distro: str) -> None:
    _checked(["--distribution", distro], f"start {distro}")


def terminate(distro: str) -> None:
    _checked(["--terminate", distro], f"stop {distro}")


def unregister(distro: str) -> None:
    _checked(["--unregister", distro], f"unregister {distro}")


def distro_command(distro: str, *command: str) -> list[str]:
    """wsl.exe's arguments to run *command* in *distro* as an argument list.

    ``--exec`` makes WSL run the program directly. Without it (Lima's way)
    wsl.exe joins the arguments back into one line for the distro's login
    shell, which would expand ``$1`` and eat backslashes in Windows paths.
    """
    return ["-d", distro, "--exec", *command]


def in_distro(distro: str, *command: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run *command* (an argument list) inside *distro*; its output is the guest's, UTF-8."""
    return run(distro_command(distro, *command), utf16=False, timeout=timeout)
