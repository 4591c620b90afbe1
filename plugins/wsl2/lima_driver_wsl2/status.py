"""The instance's state, as ``wsl.exe --list --verbose`` reports it.

The state column is returned verbatim (``Running``, ``Stopped``,
``Installing``, or localised words such as ``Wird ausgeführt``: Lima keeps
only the first word of those); a distribution that is not listed is
``Uninitialized``. When WSL lists nothing, the instance is Broken, with
Lima's hint: install a distribution (``Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND``),
or install WSL's kernel for this user.
"""

from __future__ import annotations

from lima_core.errors import DriverError
from lima_core.limatype import STATUS_UNINITIALIZED

from . import wsl

NO_DISTRIBUTIONS = "Windows Subsystem for Linux has no installed distributions"
DEFAULT_DISTRO_NOT_FOUND = "Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND"


class StatusError(DriverError):
    """The state cannot be read; the instance is Broken and the message says why."""


def parse(output: str, instance_name: str) -> str:
    """The state of ``lima-<instance_name>`` in *output* (decoded ``--list --verbose``)."""
    if not output.strip():
        raise StatusError(f"failed to read instance state for instance {instance_name!r}, try running "
                          "`wsl --list --verbose` to debug")
    if NO_DISTRIBUTIONS in output:
        if DEFAULT_DISTRO_NOT_FOUND in output:
            raise StatusError(f"failed to read instance state for instance {instance_name!r} because no distro "
                              "is installed, try running `wsl --install -d Ubuntu` and then re-running Lima")
        raise StatusError(f"failed to read instance state for instance {instance_name!r} because there is no "
                          "WSL kernel installed, this usually happens when WSL was installed for another user, "
                          "but never for your user. Try running `wsl --install -d Ubuntu` and `wsl --update`, "
                          "and then re-running Lima")
    distro = wsl.distro_name(instance_name)
    for line in output.replace("\r\n", "\n").split("\n"):
        cols = line.split()
        index = 1 if cols[:1] == ["*"] else 0
        if len(cols) > index + 1 and cols[index] == distro:
            rest = cols[index + 1:]
            # STATE may be several words once localised ("Wird ausgeführt"); VERSION is the last column.
            return " ".join(rest[:-1]) if len(rest) > 1 and rest[-1].isdigit() else rest[0]
    return STATUS_UNINITIALIZED


def get(instance_name: str) -> str:
    """Run ``wsl.exe --list --verbose`` and parse it; StatusError (or DriverError) when it cannot be read."""
    result = wsl.list_verbose()
    if NO_DISTRIBUTIONS in result.output or not result.output.strip():
        return parse(result.output, instance_name)
    if not result.ok:
        raise StatusError(f"failed to run `wsl --list --verbose`: {result.describe()}")
    return parse(result.output, instance_name)
