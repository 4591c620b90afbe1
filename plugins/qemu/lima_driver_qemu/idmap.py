"""The guest user's uid as the host user's, for the processes that serve shared directories.

Lima needs no mapping: the guest user has the host user's uid, so 9p and
virtiofs (which show the guest the host's numeric owners) make the host
user's files the guest user's. lima-core gives the guest user another uid
when the host user is root (``lima``, uid 1000: see :mod:`lima_core.users`)
or when lima.yaml sets ``user.uid``; then a directory the host user owns
would show up owned by someone else, and the guest user could not write it.

So when the two uids differ, QEMU (the 9p server) and virtiofsd run in a
user namespace (util-linux ``unshare --map-user``) in which the guest user's
uid and gid are the host user's: the guest sees the host user's files as the
guest user's, and what the guest user creates belongs to the host user. Other
host owners show up as ``nobody``. virtiofsd keeps its capabilities inside
the namespace (``--keep-caps``): its sandbox needs them. See docs/mounts.md.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)


def needed(guest_uid: int) -> bool:
    """Whether the guest user's uid differs from the host user's."""
    return hasattr(os, "getuid") and os.getuid() != guest_uid


def prefix(guest_uid: int, keep_caps: bool = False) -> list[str]:
    """The words that run a command with the host user's uid and gid seen as *guest_uid* (the guest user's
    primary group is taken to have the same number, as cloud-init's useradd gives it when free)."""
    unshare = shutil.which("unshare") or "unshare"
    words = [unshare, f"--map-user={guest_uid}", f"--map-group={guest_uid}"]
    return words + (["--keep-caps"] if keep_caps else [])


@functools.lru_cache(maxsize=8)
def unavailable(guest_uid: int) -> str:
    """Why a user namespace cannot be made here ("" when it can): no util-linux ``unshare``, or the kernel
    or a container's seccomp profile forbids it."""
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    try:
        proc = subprocess.run([*prefix(guest_uid), "true"], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return "" if proc.returncode == 0 else (proc.stderr.strip() or f"exit status {proc.returncode}")
