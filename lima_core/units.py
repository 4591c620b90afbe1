"""Sizes as Lima writes them in lima.yaml ("4GiB", "100GiB", "512MiB").

Lima parses them with go-units' RAMInBytes, where every suffix is binary:
"4G", "4GB" and "4GiB" all mean 4 * 1024**3 bytes.
"""

from __future__ import annotations

import re

from .errors import ConfigError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes in *text*; ConfigError naming *what* when it is not a size."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"{what}: {text!r} is not a size; write it as Lima does, e.g. \"4GiB\" or \"512MiB\"")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def format_size(size: int) -> str:
    """The shortest exact binary form: 4294967296 -> "4GiB"."""
    for suffix, factor in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return f"{size}B" if size else "0B"


def human_size(size: int) -> str:
    """A rounded form for tables: 4294967296 -> "4GiB", 1610612736 -> "1.5GiB"."""
    value = float(size)
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or suffix == "TiB":
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
        value /= 1024
    raise AssertionError("unreachable")
