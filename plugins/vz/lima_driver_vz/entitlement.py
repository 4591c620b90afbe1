"""The ``com.apple.security.virtualization`` entitlement: checking for it, and an interpreter that has it.

Virtualization.framework refuses every VM of a process whose code signature
lacks the entitlement (``validateWithError_``: "The process doesn't have the
com.apple.security.virtualization entitlement"). Lima ad-hoc signs ``limactl``
with an entitlements plist. A Python driver runs inside a Python interpreter,
which is not signed that way, so lima-driver-vz makes an entitled copy of the
interpreter once per Python environment and runs the external driver with it:

- ``lima-driver-vz --entitle`` (:func:`entitle`) copies the interpreter
  executable that runs the driver (the real Mach-O file, e.g.
  ``Python.app/Contents/MacOS/Python`` for a framework build, not the
  ``bin/python3`` launcher) to ``<sys.prefix>/bin/lima-vz-python`` and
  signs the copy ad hoc: ``codesign --force --sign - --entitlements
  <plist> <copy>``. In a virtual environment the copy finds the
  environment's ``pyvenv.cfg`` beside it, so it imports the same packages.
  Libraries the interpreter loads relative to its own directory
  (``@executable_path/../lib/libpython3.12.dylib``, as uv's Pythons do) get
  a symbolic link at the same relative place. A stamp file beside the copy
  records the SHA-256 of the executable it was made from.
- ``lima-driver-vz`` (:func:`reexec`), started by lima as an external
  driver, replaces itself with the copy (same pid, same arguments, ``-m
  lima_driver_vz``) when the copy exists and still matches the interpreter;
  a copy made from another build of Python is not used, and the error says
  to run ``--entitle`` again.
- Before a VM is configured (``check_host``, ``start``), :func:`require`
  asks the Security framework whether this process has the entitlement
  (``SecTaskCopyValueForEntitlement``) and otherwise fails with one line
  saying what to run.

lima uses the external driver when ``LIMA_EXTERNAL_DRIVERS=vz`` (or
``external: [vz]`` in ``$LIMA_HOME/_config/drivers.yaml``). The in-process
driver needs the process running lima to be entitled: ``lima-vz-python -m
lima_core ...`` runs lima with the copy, and the host agent it starts
(``sys.executable -m lima_core hostagent``) inherits it; that is also the
way to the GUI, which needs the host agent's main thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lima_core.errors import DriverError, HostUnsupported

from . import macho

ENTITLEMENT = "com.apple.security.virtualization"
ENTITLED_PYTHON = "lima-vz-python"
STAMP_SUFFIX = ".json"
#: set in the environment of the re-executed driver, so a copy that is not entitled cannot loop
REEXEC_ENV = "LIMA_VZ_ENTITLED_COPY"
EXTERNAL_HINT = "set LIMA_EXTERNAL_DRIVERS=vz so that lima runs the VM in lima-driver-vz"


def interpreter() -> Path:
    """The executable this process runs: the real Mach-O file, whatever launcher started it."""
    import psutil

    try:
        return Path(psutil.Process().exe()).resolve()
    except (psutil.Error, OSError):
        return Path(sys.executable).resolve()


def copy_path(prefix: str | os.PathLike[str] | None = None) -> Path:
    """Where the entitled copy of this environment's interpreter lives."""
    return Path(prefix if prefix is not None else sys.prefix) / "bin" / ENTITLED_PYTHON


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp(copy: Path) -> Path:
    return copy.with_name(copy.name + STAMP_SUFFIX)


def copy_status(copy: Path, source: Path) -> str | None:
    """None when *copy* is an entitled copy of *source*; else why it cannot be used."""
    try:
        stamp = json.loads(_stamp(copy).read_text())
    except (OSError, ValueError):
        return "missing" if not copy.exists() else f"{_stamp(copy)} is missing or unreadable"
    if not copy.is_file():
        return "missing"
    if stamp.get("source") != str(source) or stamp.get("sha256") != _digest(source):
        return f"{copy} was made from another Python build ({stamp.get('source')})"
    return None


# -- checking -----------------------------------------------------------------------------------


def process_has_entitlement(bindings: Any) -> bool:
    """True when this process's code signature carries the entitlement (asked of the Security framework)."""
    security = bindings.Security
    task = security.SecTaskCreateFromSelf(None)
    if task is None:
        return False
    value, _error = security.SecTaskCopyValueForEntitlement(task, ENTITLEMENT, None)
    return bool(value)


def missing_message(source: Path | None = None, copy: Path | None = None) -> str:
    """One line: what lacks the entitlement, and what to run."""
    source = source or interpreter()
    copy = copy or copy_path()
    status = copy_status(copy, source)
    if source == copy.resolve():
        todo = "its signature does not carry the entitlement: run `lima-driver-vz --entitle` again"
    elif status is None:
        todo = f"run the external driver, which uses the entitled copy {copy}: {EXTERNAL_HINT}"
    elif status == "missing":
        todo = f"run `lima-driver-vz --entitle` once, then {EXTERNAL_HINT}"
    else:
        todo = f"{status}: run `lima-driver-vz --entitle` again"
    return f"vz: this process ({source}) lacks the {ENTITLEMENT} entitlement, which Virtualization.framework requires; {todo}"


def require(bindings: Any) -> None:
    """HostUnsupported (one line saying what to run) unless this process has the entitlement."""
    if not process_has_entitlement(bindings):
        raise HostUnsupported(missing_message())


# -- making the entitled copy -----------------------------------------------------------------------


def _run(args: list[str], what: str) -> str:
    if shutil.which(args[0]) is None:
        raise DriverError(f"{what} needs `{args[0]}`, which is not on PATH (it comes with macOS)")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise DriverError(f"{what} failed: `{' '.join(args)}` exited with status {proc.returncode}"
                          + (f": {detail[-1]}" if detail else ""))
    return proc.stdout + proc.stderr


def _link_relative_libraries(source: Path, target_dir: Path, root: Path) -> list[Path]:
    """Symbolic links so that the copy in *target_dir* finds the libraries *source* loads relative to itself."""
    if source.parent.resolve() == target_dir.resolve():
        return []
    try:
        refs = macho.references(source)
    except macho.NotMachO as exc:
        raise DriverError(f"cannot make an entitled copy of {source}: {exc}") from exc
    made: list[Path] = []
    for relative in refs.executable_relative():
        original = source.parent / relative
        if not original.exists():
            continue  # one of several run paths; dyld tries the next
        link = Path(os.path.normpath(target_dir / relative))
        if not link.is_relative_to(root):
            raise DriverError(f"cannot make an entitled copy of {source}: it loads {relative} relative to itself, "
                              f"which would fall outside {root}; use a virtual environment or another Python build")
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(original.resolve())
        made.append(link)
    return made


def entitle(source: Path | None = None, target: Path | None = None, *, root: Path | None = None) -> Path:
    """Make (or remake) the entitled copy of *source* at *target*; returns *target*.

    :raises DriverError: the copy cannot be written or signed (the message says why).
    """
    source = (source or interpreter()).resolve()
    target = target or copy_path()
    root = (root or Path(sys.prefix)).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(target.parent, os.W_OK):
        raise DriverError(f"cannot write {target.parent}: make a virtual environment you own "
                          "(`python3 -m venv ~/.lima-vz && ~/.lima-vz/bin/pip install lima-driver-vz`) and run its "
                          "`lima-driver-vz --entitle`")
    links = _link_relative_libraries(source, target.parent, root)
    fd, plist_name = tempfile.mkstemp(prefix="lima-vz-", suffix=".entitlements")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(plistlib.dumps({ENTITLEMENT: True}))
        shutil.copy2(source, tmp)
        os.chmod(tmp, 0o755)
        _run(["codesign", "--force", "--sign", "-", "--entitlements", plist_name, str(tmp)],
             f"signing {target} with the {ENTITLEMENT} entitlement")
        shown = _run(["codesign", "--display", "--entitlements", "-", str(tmp)], f"checking the signature of {target}")
        if ENTITLEMENT not in shown:
            raise DriverError(f"codesign signed {target} but its signature does not list {ENTITLEMENT}")
        os.replace(tmp, target)
        _stamp(target).write_text(json.dumps({"source": str(source), "sha256": _digest(source),
                                              "links": [str(p) for p in links]}, indent=1) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.unlink(plist_name)
    return target


def entitle_command(argv: list[str]) -> int:
    """``lima-driver-vz --entitle``: make the copy and say what to do next."""
    if sys.platform != "darwin":
        print("lima-driver-vz --entitle: the entitlement is a macOS code-signing feature; this host runs "
              f"{sys.platform}", file=sys.stderr)
        return 1
    try:
        target = entitle()
    except DriverError as exc:
        print(f"lima-driver-vz --entitle: {exc.message}", file=sys.stderr)
        return 1
    print(f"signed {target} with the {ENTITLEMENT} entitlement. Either {EXTERNAL_HINT}, or run lima itself "
          f"as `{target} -m lima_core` (the VM then runs in lima's host agent, where the GUI works too)")
    return 0


# -- using it ---------------------------------------------------------------------------------------------


def reexec(argv: list[str], execve: Any = os.execve, platform: str = sys.platform) -> None:
    """Replace this process with the entitled copy, if there is a usable one and this is not it already."""
    if platform != "darwin" or os.environ.get(REEXEC_ENV):
        return
    source = interpreter()
    copy = copy_path()
    if source == copy.resolve() or copy_status(copy, source) is not None:
        return
    env = {**os.environ, REEXEC_ENV: "1"}
    execve(str(copy), [str(copy), "-m", "lima_driver_vz", *argv[1:]], env)
