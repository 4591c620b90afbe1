"""What went wrong in the guest's boot scripts and provisions, read back after the boot finished.

boot.sh (and the ``bootcmd`` items of ``mode: boot`` provisions) record each
failure as a line of ``/run/lima-boot-errors``: ``<kind> <name> <status>
[<log>]``. A failed provision makes the start degraded, named with its index
and mode and the tail of its output; a failed boot script is a warning (Lima's
own scripts fail on guests that lack what they set up, and the boot goes on).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path

from .. import cidata, sshutil
from ..limatype import LimaYAML

TAIL_LINES = 15


@dataclasses.dataclass(frozen=True)
class Failure:
    kind: str
    name: str
    status: str
    log: str


def parse(text: str) -> list[Failure]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append(Failure(parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ""))
    return out


def _run(inst_dir: Path, name: str, script: str) -> str:
    ssh = sshutil.command(inst_dir, name, connect_timeout=5, tty=False)
    try:
        proc = subprocess.run([*ssh, "--", "/bin/sh"], input=script.encode(), capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.decode(errors="replace")


def _read(path: str) -> str:
    q = shlex.quote(path)
    return f"cat {q} 2>/dev/null || sudo -n cat {q} 2>/dev/null || true\n"


def _tail(path: str) -> str:
    q = shlex.quote(path)
    return f"tail -n {TAIL_LINES} {q} 2>/dev/null || sudo -n tail -n {TAIL_LINES} {q} 2>/dev/null || true\n"


def collect(inst_dir: Path, name: str, cfg: LimaYAML) -> tuple[list[str], list[str]]:
    """(errors, warnings) of this boot, read from the guest."""
    failures = parse(_run(inst_dir, name, _read(cidata.BOOT_ERRORS)))
    errors: list[str] = []
    warnings: list[str] = []
    for f in failures:
        tail = _run(inst_dir, name, _tail(f.log)).rstrip() if f.log else ""
        output = ("; its output ended with:\n" + tail) if tail else (
            "; its output is in /var/log/cloud-init-output.log in the guest")
        if f.kind == "provision":
            errors.append(f"{_describe_provision(f.name, cfg)} failed with exit status {f.status}{output}")
        else:
            warnings.append(f"boot script {f.name} failed with exit status {f.status}{output}")
    return errors, warnings


def _describe_provision(name: str, cfg: LimaYAML) -> str:
    """``provision[2] (mode: system, "install the compiler")`` from ``system/00000002``."""
    mode, _, number = name.partition("/")
    try:
        index = int(number)
    except ValueError:
        return f"provision {name}"
    entries = cfg.provision or []
    first = ""
    if index < len(entries):
        lines = [ln.strip() for ln in (entries[index].script or entries[index].path or "").splitlines()]
        first = next((ln for ln in lines if ln and not ln.startswith("#!")), "")
    shown = f", {first[:60]!r}" if first else ""
    return f"provision[{index}] (mode: {mode}{shown})"
