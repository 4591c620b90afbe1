"""Boot scripts a driver ships as package data, in the form its ``boot_scripts`` hook returns.

A driver keeps the scripts the guest runs at every boot as files in its
package (``mydriver/boot/10-setup.sh``, listed as package data) and returns
them with one call::

    from lima_core import bootscripts, hookimpl

    class MyDriver:
        @hookimpl
        def boot_scripts(self) -> dict[str, bytes]:
            return bootscripts.load(__package__)

:func:`load` reads every file of the package's ``boot`` directory (sorted by
name, so ``05-`` runs before ``10-``) and keys each ``boot.Linux/<file>``, as
Lima's drivers embed ``boot.Linux/*``. ``directory`` names another folder,
``os`` another guest OS (``boot.FreeBSD/...``), ``names`` exactly which files
to ship, in that order. Dot files, ``__init__.py`` and subdirectories are not
scripts and are skipped.

The files are read through :mod:`importlib.resources`, so a driver installed
from a wheel, a zip or in editable mode reads the same bytes. A script that
is missing, or a directory that holds none, is a packaging mistake; it is
reported as DriverError naming the package and the path, once, at the first
call (the host calls ``boot_scripts`` before every start).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources

from .errors import DriverError

__all__ = ["load"]

DEFAULT_DIRECTORY = "boot"
DEFAULT_OS = "Linux"
_OS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_NOT_SCRIPTS = frozenset({"__init__.py"})


def _is_script(name: str) -> bool:
    return not name.startswith(".") and name not in _NOT_SCRIPTS


def load(package: str | None, directory: str = DEFAULT_DIRECTORY, *, os: str = DEFAULT_OS,
         names: Iterable[str] | None = None) -> dict[str, bytes]:
    """``{"boot.<os>/<file>": content}`` for the scripts in *package*'s *directory*.

    :param package: the driver's package, usually ``__package__``.
    :param directory: the folder inside the package holding the scripts.
    :param os: the guest OS the scripts are for (``Linux`` unless told).
    :param names: the files to ship, in order; default: every script there, sorted.
    :raises DriverError: the package, the folder or a named script is missing, or
        the folder holds no script.
    """
    if not package:
        raise DriverError("bootscripts.load needs the driver's package name (pass __package__)")
    if not _OS_NAME.match(os):
        raise DriverError(f"invalid guest OS name {os!r} for boot scripts: expected a word like Linux")
    where = f"{package}/{directory}"
    try:
        folder = resources.files(package).joinpath(directory)
    except ModuleNotFoundError as exc:
        raise DriverError(f"cannot read boot scripts: package {package!r} is not importable ({exc})") from exc
    if not folder.is_dir():
        raise DriverError(f"cannot read boot scripts: {where} is not a directory in the installed package "
                          "(is it listed as package data?)")
    if names is None:
        chosen = sorted(entry.name for entry in folder.iterdir() if entry.is_file() and _is_script(entry.name))
        if not chosen:
            raise DriverError(f"cannot read boot scripts: {where} holds no script")
    else:
        chosen = list(names)
    out: dict[str, bytes] = {}
    for name in chosen:
        if "/" in name or "\\" in name or not _is_script(name):
            raise DriverError(f"invalid boot script name {name!r}: expected a file name in {where}")
        script = folder.joinpath(name)
        if not script.is_file():
            raise DriverError(f"cannot read boot script {where}/{name}: it is not in the installed package")
        out[f"boot.{os}/{name}"] = script.read_bytes()
    return out
