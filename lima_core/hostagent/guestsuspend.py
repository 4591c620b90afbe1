"""What the guest needs around a suspend, done over SSH by the host agent.

Before the driver saves the VM: the guest's file systems are synced (so that
a saved state discarded later loses as little as a power cut right after a
``sync``), and the shares backed by a VM device (9p, virtiofs: the rows
cidata gives cloud-init for fstab) are unmounted. QEMU refuses to save a VM
while a 9p share is mounted (the guest holds files of the host open), and no
saved state can carry such host-side state. A share that cannot be unmounted
(a process in the guest works in it) fails the suspend; the shares unmounted
by then are mounted again.

After the resumed VM answers SSH: the same rows are mounted again, with the
type and options cidata wrote (no fstab needed, so it works on any guest),
and the guest's clock, which stood still while the VM was saved, is set to
the host's.

Both need root in the guest: the commands run through ``sudo -n`` unless the
user is root, as Lima's guest scripts do. Nothing here runs when there is
nothing to do (no share mounted, the clock within 2 s of the host's).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
import time
from pathlib import Path

from .. import mounts, sshutil
from ..cidata import userdata
from ..errors import InstanceError
from ..limatype import Info, Instance

log = logging.getLogger("lima_core.hostagent")

#: the types of shares a VM device backs (reverse-sshfs runs over SSH and needs nothing)
DEVICE_SHARE_TYPES = ("9p", "virtiofs")
#: a guest clock this far (seconds) from the host's is set after a resume
CLOCK_TOLERANCE = 2
SSH_TIMEOUT = 120.0
_MARK = "lima-core:"
_AS_ROOT = 'if [ "$(id -u)" = 0 ]; then as_root=; else as_root="sudo -n"; fi\n'


@dataclasses.dataclass
class Revived:
    #: shares that could not be mounted again (the instance is degraded)
    errors: list[str] = dataclasses.field(default_factory=list)
    #: what could not be done but leaves the instance usable (the clock), for the user
    warnings: list[str] = dataclasses.field(default_factory=list)
    #: what was done (the clock set, shares mounted), for the log
    notes: list[str] = dataclasses.field(default_factory=list)


def share_rows(instance: Instance, info: Info) -> list[list[str]]:
    """The device-backed shares cidata mounts in the guest, as ``[spec, mount point, type, options]``."""
    cfg = instance.config
    assert cfg is not None
    if cfg.plain:
        return []
    rows = userdata.mount_rows(mounts.resolve(cfg), info.features.rosetta_enabled)
    return [row[:4] for row in rows if row[2] in DEVICE_SHARE_TYPES]


def before_suspend(inst_dir: Path, name: str, rows: list[list[str]]) -> list[list[str]]:
    """Sync the guest and unmount *rows* that are mounted; the rows unmounted.

    :raises InstanceError: a share could not be unmounted (those unmounted by
        then are mounted again), or the guest did not answer.
    """
    lines = [_AS_ROOT, "sync\n"]
    for i, (_spec, point, fstype, _options) in reversed(list(enumerate(rows))):
        lines.append(f"if {_mounted(point, fstype)}; then\n"
                     f"  if out=$($as_root umount -- {shlex.quote(point)} 2>&1); then echo '{_MARK} unmounted {i}'\n"
                     f"  else echo \"{_MARK} busy {i} $out\"; exit 3; fi\n"
                     "fi\n")
    out, ok = _run(inst_dir, name, "".join(lines), "prepare the guest for suspend")
    done = [rows[int(w[2])] for w in _marks(out) if w[1] == "unmounted"]
    if ok:
        return done
    busy = next((w for w in _marks(out) if w[1] == "busy"), None)
    if done:
        again = after_resume(inst_dir, name, done, set_clock=False)
        for error in again.errors:
            log.error("%s", error)
    if busy is None:
        raise InstanceError(f"cannot prepare the guest for suspend: {_last(out)}")
    point = rows[int(busy[2])][1]
    raise InstanceError(f"cannot suspend: {point} cannot be unmounted in the guest ({busy[3] or 'busy'}); a "
                        "process in the guest has files open there or works in it (a `lima shell` in that "
                        "directory, say): end it and suspend again")


def after_resume(inst_dir: Path, name: str, rows: list[list[str]], *, set_clock: bool = True) -> Revived:
    """Set the guest's clock to the host's and mount *rows* again; what failed is in ``errors``."""
    lines = [_AS_ROOT]
    if set_clock:
        # The host's time when ssh runs this, to the second: the script is made just before.
        lines.append(f"host={int(time.time() + 0.5)}\n"
                     "drift=$((host - $(date +%s)))\n"
                     f"if [ $drift -ge {CLOCK_TOLERANCE} ] || [ $drift -le -{CLOCK_TOLERANCE} ]; then\n"
                     f"  if out=$($as_root date -u -s \"@$host\" 2>&1); then echo \"{_MARK} clock $drift\"\n"
                     f"  else echo \"{_MARK} noclock $drift $out\"; fi\n"
                     "fi\n")
    for i, (spec, point, fstype, options) in enumerate(rows):
        opts = ",".join(o for o in options.split(",") if o and o != "nofail")
        lines.append(f"if ! {_mounted(point, fstype)}; then\n"
                     f"  if out=$($as_root mkdir -p -- {shlex.quote(point)} 2>&1 && $as_root mount -t "
                     f"{shlex.quote(fstype)} -o {shlex.quote(opts)} {shlex.quote(spec)} {shlex.quote(point)} 2>&1)\n"
                     f"  then echo '{_MARK} mounted {i}'; else echo \"{_MARK} unmountable {i} $out\"; fi\n"
                     "fi\n")
    result = Revived()
    if len(lines) == 1:
        return result
    out, ok = _run(inst_dir, name, "".join(lines), "set up the guest after resume")
    if not ok:
        result.errors.append(f"could not set up the guest after resume: {_last(out)}")
        return result
    for mark in _marks(out):
        what, arg, rest = mark[1], mark[2], mark[3]
        if what == "clock":
            result.notes.append(f"set the guest's clock, {arg} s behind the host's, to the host's")
        elif what == "noclock":
            result.warnings.append(f"could not set the guest's clock, {arg} s behind the host's: {rest}")
        elif what == "mounted":
            result.notes.append(f"mounted {rows[int(arg)][1]} again")
        elif what == "unmountable":
            result.errors.append(f"could not mount {rows[int(arg)][1]} again in the guest: {rest or 'no reason given'}")
    return result


def _mounted(point: str, fstype: str) -> str:
    """A shell test: *point* is mounted as *fstype* (``/proc/mounts`` spells blanks and ``\\`` in octal)."""
    escaped = "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in point)
    return f"grep -qsF -- {shlex.quote(f' {escaped} {fstype} ')} /proc/mounts"


def _marks(out: str) -> list[list[str]]:
    """The ``lima-core: WORD N rest`` lines of *out*, split in four (rest may be "")."""
    marks = []
    for line in out.splitlines():
        if line.startswith(_MARK):
            words = line[len(_MARK):].strip().split(" ", 2)
            marks.append([_MARK, *words, *[""] * (3 - len(words))])
    return marks


def _run(inst_dir: Path, name: str, script: str, what: str) -> tuple[str, bool]:
    """Run *script* with the guest's /bin/sh over SSH: (its output, whether it exited 0)."""
    ssh = sshutil.command(inst_dir, name, connect_timeout=10, tty=False)
    try:
        proc = subprocess.run([*ssh, "--", "/bin/sh"], input=script.encode(), capture_output=True,
                              timeout=SSH_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise InstanceError(f"cannot {what}: the guest did not answer over SSH within {SSH_TIMEOUT:g} s") from None
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    return out, proc.returncode == 0


def _last(out: str) -> str:
    lines = [line for line in out.strip().splitlines() if not line.startswith(_MARK)]
    return " | ".join(lines[-3:]) or "no output"
