"""Reading the text files lima-core keeps under LIMA_HOME, with one error for a file that is not text.

Every file lima-core reads back (``lima.yaml``, ``_config/*.yaml``,
``lima-version``, ``ssh.config``, pid files, the host agent's event log) is
UTF-8 text when lima-core or Lima wrote it. A stray byte (a Latin-1 comment, a
disk error, a hand edit in another encoding) must not turn every command into
a traceback: :func:`read` raises :class:`~lima_core.errors.CorruptFile` naming
the file, the byte and its line, which the store shows as the reason an
instance is Broken and the CLI prints as one line.
"""

from __future__ import annotations

import os

from .errors import CorruptFile


def decode(data: bytes, source: str | os.PathLike[str]) -> str:
    """*data* as UTF-8 text; CorruptFile names *source*, the first bad byte and its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorruptFile(f"{os.fspath(source)} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})") \
            from None


def read(path: str | os.PathLike[str]) -> str:
    """The text of *path*. OSError as ``open`` raises it; CorruptFile when it is not UTF-8."""
    with open(path, "rb") as f:
        return decode(f.read(), path)
