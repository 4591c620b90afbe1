"""The libraries a Mach-O executable loads, read from its load commands (no Xcode tools needed).

:func:`references` answers what ``otool -L`` and ``otool -l | grep -A2
LC_RPATH`` would: the install names of the libraries the executable links
(``LC_LOAD_DYLIB`` and its weak, re-export, lazy and upward forms) and its
run-path entries (``LC_RPATH``). A universal ("fat") file is read through its
first slice; every slice of one Python build links the same libraries.

:mod:`.entitlement` uses it to keep ``@executable_path``-relative libraries
reachable when it copies the interpreter into another directory.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

FAT_MAGIC, FAT_MAGIC_64 = 0xCAFEBABE, 0xCAFEBABF
MH_MAGIC, MH_MAGIC_64 = 0xFEEDFACE, 0xFEEDFACF
LC_REQ_DYLD = 0x80000000
DYLIB_COMMANDS = frozenset({0xC, 0x18 | LC_REQ_DYLD, 0x1F | LC_REQ_DYLD, 0x20, 0x23 | LC_REQ_DYLD})
LC_RPATH = 0x1C | LC_REQ_DYLD
#: library references relative to the executable's own directory
EXECUTABLE_RELATIVE = ("@executable_path/", "@loader_path/")


class NotMachO(ValueError):
    """The file is not a Mach-O executable."""


@dataclasses.dataclass(frozen=True)
class References:
    dylibs: tuple[str, ...]
    rpaths: tuple[str, ...]

    def executable_relative(self) -> list[str]:
        """Paths, relative to the executable's directory, that dyld may open for this executable."""
        out: list[str] = []
        for name in self.dylibs:
            relative = _relative(name)
            if relative is not None:
                out.append(relative)
            elif name.startswith("@rpath/"):
                tail = name[len("@rpath/"):]
                for rpath in self.rpaths:
                    base = _relative(rpath)
                    if base is not None:
                        out.append(f"{base}/{tail}" if base else tail)
        return out


def _relative(reference: str) -> str | None:
    """``@executable_path/../lib/x`` -> ``../lib/x``; None for an absolute or @rpath reference."""
    for prefix in EXECUTABLE_RELATIVE:
        if reference.startswith(prefix):
            return reference[len(prefix):]
        if reference == prefix.rstrip("/"):
            return ""
    return None


def _c_string(blob: bytes, start: int, end: int) -> str:
    raw = blob[start:end]
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _thin(blob: bytes, base: int) -> References:
    (magic,) = struct.unpack_from("<I", blob, base)
    if magic == MH_MAGIC_64:
        header = 32
    elif magic == MH_MAGIC:
        header = 28
    else:
        raise NotMachO(f"no Mach-O header at offset {base}")
    ncmds, _sizeofcmds = struct.unpack_from("<II", blob, base + 16)
    dylibs: list[str] = []
    rpaths: list[str] = []
    offset = base + header
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", blob, offset)
        if size < 8 or offset + size > len(blob):
            raise NotMachO("a load command runs past the end of the file")
        if cmd in DYLIB_COMMANDS or cmd == LC_RPATH:
            (name_offset,) = struct.unpack_from("<I", blob, offset + 8)
            name = _c_string(blob, offset + name_offset, offset + size)
            (rpaths if cmd == LC_RPATH else dylibs).append(name)
        offset += size
    return References(tuple(dylibs), tuple(rpaths))


def references(path: Path) -> References:
    """The library references of the Mach-O file at *path*; NotMachO when it is not one."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise NotMachO(f"{path} is too short to be an executable")
        (big,) = struct.unpack(">I", head[:4])
        base = 0
        if big in (FAT_MAGIC, FAT_MAGIC_64):
            (count,) = struct.unpack(">I", head[4:8])
            if count == 0:
                raise NotMachO(f"{path} is a universal file without slices")
            f.seek(8)
            entry = f.read(32 if big == FAT_MAGIC_64 else 20)
            base = struct.unpack_from(">Q" if big == FAT_MAGIC_64 else ">I", entry, 8)[0]
        f.seek(base)
        header = f.read(32)
        if len(header) < 28:
            raise NotMachO(f"{path} ends inside its Mach-O header")
        (sizeofcmds,) = struct.unpack_from("<I", header, 20)
        f.seek(base)
        blob = f.read(32 + sizeofcmds)
    try:
        return _thin(blob, 0)
    except struct.error as exc:
        raise NotMachO(f"{path}: truncated load commands") from exc
