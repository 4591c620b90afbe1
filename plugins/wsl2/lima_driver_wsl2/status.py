"""The instance's state, as ``wsl.exe --list --verbose`` reports it.

The state column is returned verbatim (``Running``, ``Stopped``,
``Installing``, or localised words such as ``Wird ausgeführt``: Lima keeps
only the first word of those); a distribution that is not listed is
``Uninitialized``.

When WSL has no distribution at all, ``wsl.exe --list`` prints "Windows
Subsystem for Linux has no installed distributions." and exits with -1.
Today's wsl.exe prints no error code with it (``WslClient.cpp`` leaves the
code out for ``WSL_E_DEFAULT_DISTRO_NOT_FOUND``); Lima looks for that code
and otherwise tells the user WSL's kernel is missing, which is wrong. No
distribution means the instance's distro is not registered: the instance
is ``Uninitialized``, and ``start`` imports it (``wsl --import`` needs no
other distribution). When WSL 2 itself is not usable, the import says so.

The VERSION column is read too: a distro registered as WSL 1 cannot serve
the guest agent (it has no Hyper-V VM), and :func:`entry` reports it.
"""

from __future__ import annotations

import dataclasses

from lima_core.errors import DriverError
from lima_core.limatype import STATUS_UNINITIALIZED

from . import wsl

NO_DISTRIBUTIONS = "Windows Subsystem for Linux has no installed distributions"


class StatusError(DriverError):
    """The state cannot be read; the instance is Broken and the message says why."""


@dataclasses.dataclass(frozen=True)
class Entry:
    #: the STATE column verbatim, or Uninitialized
    state: str
    #: the VERSION column ("1" or "2"); "" when not listed
    version: str = ""


def parse_entry(output: str, instance_name: str) -> Entry:
    """The row of ``lima-<instance_name>`` in *output* (decoded ``--list --verbose``)."""
    if not output.strip():
        raise StatusError(f"failed to read instance state for instance {instance_name!r}, try running "
                          "`wsl --list --verbose` to debug")
    if NO_DISTRIBUTIONS in output:
        return Entry(STATUS_UNINITIALIZED)
    distro = wsl.distro_name(instance_name)
    for line in output.replace("\r\n", "\n").split("\n"):
        cols = line.split()
        index = 1 if cols[:1] == ["*"] else 0
        if len(cols) > index + 1 and cols[index] == distro:
            rest = cols[index + 1:]
            # STATE may be several words once localised ("Wird ausgeführt"); VERSION is the last column.
            if len(rest) > 1 and rest[-1].isdigit():
                return Entry(" ".join(rest[:-1]), rest[-1])
            return Entry(rest[0])
    return Entry(STATUS_UNINITIALIZED)


def parse(output: str, instance_name: str) -> str:
    """The state of ``lima-<instance_name>`` in *output*."""
    return parse_entry(output, instance_name).state


def entry(instance_name: str) -> Entry:
    """Run ``wsl.exe --list --verbose`` and read the instance's row; StatusError when it cannot be read."""
    result = wsl.list_verbose()
    if NO_DISTRIBUTIONS in result.stdout:
        return Entry(STATUS_UNINITIALIZED)
    if not result.ok:
        raise StatusError(f"failed to run `wsl --list --verbose`: {result.describe()}")
    return parse_entry(result.stdout, instance_name)


def get(instance_name: str) -> str:
    """The instance's state (see the module docstring)."""
    return entry(instance_name).state
