"""Helpers shared by the vz tests (a module with a unique name: every plugin has a conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from lima_driver_vz import identifier
from lima_driver_vz.hostinfo import HostFacts

from lima_core import filenames
from lima_core.limatype import Instance

MAC = HostFacts(system="Darwin", macos=(15, 5), arch="aarch64")


def make_bootable(inst: Instance, fake: Any | None = None) -> Path:
    """What the host leaves before start: the identifier, a raw disk and cidata.iso."""
    d = Path(inst.dir)
    identifier.ensure(d, fake.Virtualization if fake is not None else None)
    (d / filenames.DISK).write_bytes(b"\0" * 4096)
    (d / filenames.CIDATA_ISO).write_bytes(b"\0" * 4096)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fake disk tools: qemu-img, diskutil, hdiutil ----------------------------------------------------

ASIF_HEADER = 512  # the fake ASIF image: b"shdw", padding to 512 bytes, then the disk's bytes
QCOW2_HEADER = 64  # the fake qcow2 image: b"QFI\xfb", padding to 64 bytes, then the disk's bytes

_FAKE_TOOL = '''#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DISK_LOG"], "a") as log:
    log.write(json.dumps([{tool!r}, *args]) + "\\n")
{body}
'''

_QEMU_IMG = '''
if args[:3] != ["convert", "-O", "raw"] or len(args) != 5:
    sys.exit("qemu-img: unexpected arguments")
src, dst = args[3], args[4]
with open(src, "rb") as f:
    data = f.read()
if not data.startswith(b"QFI\\xfb"):
    sys.exit("qemu-img: the fake converts only its own qcow2 images")
with open(dst, "wb") as f:
    f.write(data[{qcow2}:])
'''

_DISKUTIL = '''
def refuse(why):
    print("diskutil: " + why, file=sys.stderr)
    sys.exit(1)
if args[:3] == ["image", "create", "blank"]:
    size, path = int(args[args.index("--size") + 1]), args[-1]
    if args[args.index("--format") + 1] != "ASIF":
        refuse("the fake makes ASIF images only")
    if not path.endswith(".asif"):
        path += ".asif"  # as diskutil names a new image
    with open(path, "wb") as f:
        f.write(b"shdw".ljust({asif}, b"\\0"))
        f.truncate({asif} + size)
elif args[:3] == ["image", "attach", "--noMount"]:
    path = args[3]
    with open(path, "rb") as f:
        if f.read(4) != b"shdw":
            refuse(path + ": not a recognized disk image")  # diskutil reads Apple's formats only
        f.seek({asif})
        payload = f.read()
    dev = os.path.join(os.environ["FAKE_DEV_DIR"], "disk9")
    with open(dev, "wb") as f:
        f.write(payload)
    with open(dev + ".image", "w") as f:
        f.write(path)
    print(dev)
elif args[:2] == ["image", "resize"]:
    size, path = int(args[args.index("--size") + 1]), args[-1]
    os.truncate(path, {asif} + size)
else:
    refuse("unexpected arguments")
'''

_HDIUTIL = '''
if args[:1] != ["detach"] or len(args) != 2:
    sys.exit("hdiutil: unexpected arguments")
dev = args[1]
with open(dev + ".image") as f:
    image = f.read()
with open(dev, "rb") as f:
    payload = f.read()
with open(image, "r+b") as f:
    f.seek({asif})
    f.write(payload)
os.unlink(dev)
os.unlink(dev + ".image")
'''


def install_disk_tools(bin_dir: Path, log: Path, dev_dir: Path) -> dict[str, str]:
    """Fake qemu-img, diskutil and hdiutil in *bin_dir*; returns the environment that selects them."""
    import os
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    dev_dir.mkdir(parents=True, exist_ok=True)
    for tool, body in (("qemu-img", _QEMU_IMG), ("diskutil", _DISKUTIL), ("hdiutil", _HDIUTIL)):
        path = bin_dir / tool
        path.write_text(_FAKE_TOOL.format(python=sys.executable, tool=tool,
                                          body=body.format(asif=ASIF_HEADER, qcow2=QCOW2_HEADER)))
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_DISK_LOG": str(log),
            "FAKE_DEV_DIR": str(dev_dir)}


def tool_calls(log: Path) -> list[list[str]]:
    import json

    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
