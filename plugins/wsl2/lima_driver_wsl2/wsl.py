"""Running ``wsl.exe``: which one, how its output is read, and the commands the driver uses.

Which: ``$LIMA_WSL_EXE`` when set (a path, or a name looked up on PATH),
otherwise ``wsl.exe`` on PATH. Every command is an argument list; names and
paths are passed as separate arguments, never spliced into a shell string;
commands in a distro go through ``--exec`` so they stay argument lists there too.

Output, as wsl.exe writes it (microsoft/WSL ``WslClient.cpp``):

- wsl.exe's own messages (``--list``, ``--import``, its errors) go to
  **stdout**, in UTF-16LE, or in UTF-8 when ``WSL_UTF8=1`` (WSL 0.64 and
  later; the inbox wsl.exe of older Windows ignores it). Every call sets
  ``WSL_UTF8=1``, and :func:`decode` reads either.
- its warnings go to **stderr** in the same encoding; and when the Windows
  PATH holds a directory Linux cannot see, the distro's init writes
  ``<3>WSL (N) ERROR: UtilTranslatePathList:...: Failed to translate ...``
  to stderr, in UTF-8, at every launch. stderr is therefore read apart from
  stdout, never parsed, and shown in error messages without those lines.
- what a program run in a distro prints is its own output, UTF-8; when
  wsl.exe itself fails to run it, stdout holds wsl.exe's error instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

from lima_core.errors import DriverError, DriverTimeout

WSL_EXE_ENV = "LIMA_WSL_EXE"
DEFAULT_WSL_EXE = "wsl.exe"
COMMAND_TIMEOUT = 120.0
IMPORT_TIMEOUT = 1800.0
#: the WSL version every distro is imported as: the guest agent's Hyper-V socket needs WSL 2
WSL_VERSION = "2"
UTF16_BOM = b"\xff\xfe"
#: the distro init's complaint about an untranslatable Windows PATH entry (harmless, at every launch)
PATH_NOISE = re.compile(r"^<\d>WSL \(\d+\) ERROR: UtilTranslatePathList:\d+: ")


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


def environment() -> dict[str, str]:
    """The environment of every wsl.exe the driver runs: this one, with ``WSL_UTF8=1``."""
    return {**os.environ, "WSL_UTF8": "1"}


def _decode_line(segment: bytes) -> str:
    """One line in whichever encoding it is: UTF-16LE when NUL fills most odd bytes (ASCII-range text), UTF-8
    when it is valid UTF-8, else UTF-16LE (text outside Latin-1, which has no NUL bytes)."""
    odd = segment[1::2]
    if odd and odd.count(0) * 2 >= len(odd):
        return segment[: len(segment) // 2 * 2].decode("utf-16-le", errors="replace")
    try:
        return segment.decode("utf-8")
    except UnicodeDecodeError:
        return segment[: len(segment) // 2 * 2].decode("utf-16-le", errors="replace")


def decode(data: bytes) -> str:
    """wsl.exe's output as text, whichever encoding each line is in (see the module docstring).

    A stream may mix them: UTF-8 lines from Linux next to wsl.exe's UTF-16LE
    lines. In UTF-16LE a line ends in ``\n\0``: after splitting at ``\n``,
    the NUL that starts the next piece belongs to the previous line.
    """
    if data.startswith(UTF16_BOM):
        data = data[2:]
    if b"\0" not in data:
        return data.decode("utf-8", errors="replace")
    lines = []
    for i, segment in enumerate(data.split(b"\n")):
        if i and segment.startswith(b"\0"):
            segment = segment[1:]
        lines.append(_decode_line(segment))
    return "\n".join(lines).replace("\ufeff", "")


def without_noise(text: str) -> str:
    """*text* without the PATH translation complaints of WSL's init, stripped."""
    return "\n".join(line for line in text.replace("\r\n", "\n").split("\n") if not PATH_NOISE.match(line)).strip()


@dataclasses.dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    #: stdout: wsl.exe's own text, or the program's output for a command run in a distro
    stdout: str
    #: stderr, decoded, PATH translation noise included (see :func:`without_noise`)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """`wsl.exe --x y` exited with status N (out="...", err="...")."""
        shown = " ".join(("wsl.exe", *self.args[1:]))
        detail = f"out={self.stdout.strip()!r}"
        err = without_noise(self.stderr)
        if err:
            detail += f", err={err!r}"
        return f"`{shown}` exited with status {self.code} ({detail})"


def run(args: Sequence[str], *, guest_output: bool = False, timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run ``wsl.exe *args`` to completion, stdout and stderr apart, stdin closed.

    :param guest_output: stdout is a Linux program's (UTF-8) when the command succeeds.
    """
    argv = (executable(), *args)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=environment())
    except subprocess.TimeoutExpired:
        raise DriverTimeout(f"`wsl.exe {' '.join(args)}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    if guest_output and proc.returncode == 0:
        stdout = proc.stdout.decode("utf-8", errors="replace")
    else:
        stdout = decode(proc.stdout)
    return Result(argv, proc.returncode, stdout, decode(proc.stderr))


def popen(args: Sequence[str]) -> subprocess.Popen:
    """Start ``wsl.exe *args`` in the background (stdout and stderr apart, stdin closed)."""
    argv = (executable(), *args)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=environment())
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def finished(proc: subprocess.Popen) -> Result:
    """Wait for a process from :func:`popen` and read what it wrote."""
    out, err = proc.communicate()
    return Result(tuple(map(str, proc.args)), proc.returncode,  # type: ignore[arg-type]
                  out.decode("utf-8", errors="replace") if proc.returncode == 0 else decode(out or b""),
                  decode(err or b""))


def _checked(args: Sequence[str], what: str, timeout: float = COMMAND_TIMEOUT, hint: str = "") -> Result:
    result = run(args, timeout=timeout)
    if not result.ok:
        raise DriverError(f"failed to {what}: {result.describe()}" + (f"; {hint}" if hint else ""))
    return result


# -- the commands -----------------------------------------------------------------------------------


def list_verbose() -> Result:
    return run(["--list", "--verbose"])


def import_distro(distro: str, install_dir: str, tarball: str) -> None:
    """``--import`` as WSL 2 whatever the host's default version (a WSL 1 distro has no Hyper-V socket)."""
    _checked(["--import", distro, install_dir, tarball, "--version", WSL_VERSION], f"import {tarball} as {distro}",
             IMPORT_TIMEOUT, hint="if WSL 2 itself is not set up, run `wsl --install --no-distribution` and "
                                  "`wsl --update`")


def start_distro(distro: str) -> None:
    """Start the distro: wsl.exe runs the default user's login shell, which reads end-of-file and exits."""
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
    """Run *command* (an argument list) inside *distro*; its stdout is the guest's, UTF-8."""
    return run(distro_command(distro, *command), guest_output=True, timeout=timeout)
