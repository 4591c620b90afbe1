"""What the vz driver needs to know about the host: OS, macOS version, CPU arch.

Kept as a value (:class:`HostFacts`) so tests can describe a Mac while running
on Linux; :func:`HostFacts.current` reads the real host.
"""

from __future__ import annotations

import dataclasses
import platform

from lima_core.errors import HostUnsupported
from lima_core.limatype import host_arch

#: Virtualization.framework's Linux support that Lima relies on starts here.
MIN_MACOS = (13, 0)
#: Nested virtualization needs this macOS.
NESTED_MACOS = (15, 0)
#: ASIF disk images exist from this macOS on.
ASIF_MACOS = (26, 0)
#: Intel Macs below this cannot boot Linux 6.12 or later (lima-vm/lima#3334).
INTEL_LINUX_612_MACOS = (15, 5)
#: The Rosetta share takes caching options from this macOS on.
ROSETTA_CACHING_MACOS = (14, 0)
#: Virtualization.framework saves and restores a VM's state from this macOS on.
SAVE_RESTORE_MACOS = (14, 0)


@dataclasses.dataclass(frozen=True)
class HostFacts:
    #: platform.system(): "Darwin", "Linux", "Windows", ...
    system: str
    #: the macOS product version, e.g. (14, 5); () on other systems
    macos: tuple[int, ...]
    #: Lima's arch name: "aarch64", "x86_64", ...
    arch: str

    @classmethod
    def current(cls) -> HostFacts:
        system = platform.system()
        macos: tuple[int, ...] = ()
        if system == "Darwin":
            macos = parse_version(platform.mac_ver()[0])
        return cls(system=system, macos=macos, arch=host_arch())

    @property
    def is_macos(self) -> bool:
        return self.system == "Darwin"

    def macos_at_least(self, version: tuple[int, ...]) -> bool:
        return self.is_macos and self.macos >= version

    def describe(self) -> str:
        """How a user names this OS: "Linux", "Windows", "macOS 12.6"."""
        if self.is_macos:
            return "macOS " + ".".join(str(p) for p in self.macos) if self.macos else "macOS"
        return self.system or "an unknown OS"


def parse_version(text: str) -> tuple[int, ...]:
    """"14.5.1" -> (14, 5, 1); junk parts end the tuple."""
    out = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def check(facts: HostFacts) -> None:
    """Raise HostUnsupported unless vz can run here: macOS 13 or later."""
    if not facts.macos_at_least(MIN_MACOS):
        raise HostUnsupported(f"vz needs macOS {MIN_MACOS[0]} or later; this host runs {facts.describe()}")
