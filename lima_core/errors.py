"""The errors lima-core raises, and drivers raise for the host to report.

Every error the user can cause or meet is a :class:`LimaError`. Its message is
one line that says what is wrong and, where there is one, what to do; the CLI
prints it as is and exits 1. Drivers raise these classes too: across the gRPC
boundary the class travels with the message (see ``lima_core.protocol``), so
the host sees the same type either way.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LimaError(Exception):
    """Base class: something the user can understand and act on."""

    #: Wire name of the class; the gRPC server sends it as trailing metadata.
    kind = "LimaError"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = cls.__name__
        _KINDS[cls.__name__] = cls

    @property
    def message(self) -> str:
        """The message as one line: control characters from user input (a path, a key) are escaped."""
        text = str(self.args[0]) if self.args else self.kind
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


_KINDS: dict[str, type[LimaError]] = {"LimaError": LimaError}


def error_class(kind: str) -> type[LimaError]:
    """The LimaError subclass whose wire name is *kind* (LimaError if unknown)."""
    return _KINDS.get(kind, LimaError)


# -- configuration and input ------------------------------------------------------------


class ConfigError(LimaError):
    """lima.yaml or a template is malformed or holds a value that cannot work."""


class ValidationError(ConfigError):
    """A driver cannot run this configuration (``validate`` raised it)."""


class CorruptFile(LimaError):
    """A file lima-core keeps under LIMA_HOME does not hold what it should (not UTF-8 text, not a number)."""


class InvalidName(LimaError):
    """An instance name breaks Lima's naming rule."""


class TemplateError(LimaError):
    """A template cannot be located, read or parsed."""


# -- instances --------------------------------------------------------------------------


class InstanceError(LimaError):
    """An operation on an instance cannot proceed in its current state."""


class InstanceNotFound(InstanceError):
    """No instance of that name under LIMA_HOME."""


class InstanceExists(InstanceError):
    """An instance of that name already exists."""


class InstanceLocked(InstanceError):
    """Another process holds the instance (it is running or being started)."""


# -- drivers ----------------------------------------------------------------------------


class DriverError(LimaError):
    """A driver failed; the message is the driver's own."""


class DriverNotFound(DriverError):
    """No installed driver has that name."""


class DriverLoadError(DriverError):
    """A driver is installed but cannot be imported or registered."""


class UnsupportedOperation(DriverError):
    """The driver does not implement this hook (``driver 'x' does not support ...``)."""


class HostUnsupported(DriverError):
    """The driver cannot run on this host (wrong OS, missing framework, ...)."""


class NoDisplay(DriverError):
    """The driver has no display to capture (Lima's ErrNoDisplay)."""


class DriverTimeout(DriverError):
    """A driver call passed its deadline."""


class DriverUnavailable(DriverError):
    """An external driver process is not reachable: it died or never started."""


class DriverProcessError(DriverError):
    """An external driver process could not be started or stopped."""


class StartFailed(DriverError):
    """The VM did not start, or stopped with an error while booting."""


# -- processes --------------------------------------------------------------------------


class SignalDenied(LimaError):
    """The system does not let lima-core signal a process (it runs as another user); it was left alone."""
