"""Bringing a distro up for Lima: its root filesystem, the boot script, and keeping it alive.

- :func:`ensure_rootfs`: ``<inst>/basedisk``, the tarball ``wsl --import``
  reads. Lima downloads it again from ``images[]``; lima-core takes the
  ``image`` the host already downloaded (hard link, or copy), or a local
  ``images[]`` file.
- :func:`boot_script`: Lima's lima-init: log to ``/var/log/lima-init.log``,
  find cidata through ``wslpath``, exec its ``boot.sh``. Paths are quoted for
  the shell, so an instance directory with quotes or ``$( )`` stays a path.
- :func:`to_linux_path`: ``wslpath -u`` with the Windows path as an argument;
  only its stdout is read (stderr carries WSL's PATH noise, see
  :mod:`.wsl`). The boot script then runs as ``bash <path>`` (Lima: ``bash
  -c <path>``, which breaks on a temporary directory with a space in it).
- :data:`KEEP_ALIVE`: the command that keeps WSL from stopping an idle distro.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lima_core import atomicfile, filenames
from lima_core.errors import DriverError, StartFailed
from lima_core.limatype import LimaYAML, host_arch

from . import wsl

LOG_FILE = "/var/log/lima-init.log"
KEEP_ALIVE = ("bash", "-c", "nohup sleep 2147483647d >/dev/null 2>&1")


def _local_file(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    if "://" not in location:
        return Path(os.path.expanduser(location))
    return None


def ensure_rootfs(instance_dir: Path, cfg: LimaYAML) -> Path:
    """``basedisk``, made from ``image`` or a local ``images[]`` file when missing."""
    basedisk = instance_dir / filenames.BASE_DISK
    if basedisk.exists():
        return basedisk
    sources = [instance_dir / filenames.IMAGE]
    arch = cfg.arch or host_arch()
    for image in cfg.images or []:
        local = _local_file(image.location) if (image.arch or arch) == arch else None
        if local is not None:
            sources.append(local)
    for source in sources:
        if source.is_file():
            with atomicfile.replacing(basedisk) as tmp:
                try:
                    os.link(source, tmp)
                except OSError:
                    shutil.copyfile(source, tmp)
            return basedisk
    raise StartFailed(f"the root filesystem has not been downloaded: neither {basedisk} nor "
                      f"{instance_dir / filenames.IMAGE} exists")


def boot_script(cidata_dir: str) -> bytes:
    """The script run in the distro at start (Lima's lima-init)."""
    return (
        "#!/bin/bash\n"
        "# lima-driver-wsl2: runs Lima's boot.sh from the instance's cidata directory.\n"
        "set -eu\n"
        f"exec > >(tee {LOG_FILE}) 2>&1\n"
        f"LIMA_CIDATA_MNT=\"$(/usr/bin/wslpath {shlex.quote(cidata_dir)})\"\n"
        "export LIMA_CIDATA_MNT\n"
        'exec "$LIMA_CIDATA_MNT/boot.sh"\n'
    ).encode()


def write_boot_script(instance_dir: Path) -> Path:
    """The boot script in a host temporary file (the caller removes it)."""
    content = boot_script(str(instance_dir / filenames.CIDATA_DIR))
    fd, name = tempfile.mkstemp(prefix="lima-wsl2-boot-", suffix=".sh")
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return Path(name)


def to_linux_path(distro: str, host_path: str) -> str:
    """*host_path* as the distro sees it (``wslpath -u``); the path is an argument, not shell text."""
    result = wsl.in_distro(distro, "bash", "-c", 'wslpath -u "$1"', "wslpath", host_path)
    path = result.stdout.strip()
    if not result.ok or not path:
        raise DriverError(f"failed to run the wslpath command: {result.describe()}")
    return path
