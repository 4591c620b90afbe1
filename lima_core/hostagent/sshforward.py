"""Forwards through the instance's SSH ControlMaster, and listing the guest's ports over SSH.

``ssh -O forward -L HOST:GUEST`` asks the running master (``ssh.sock``) to
listen on the host and carry each connection to the guest (``-R`` the other
way); ``-O cancel`` undoes it. This is how Lima sets up static rules, socket
rules (its default) and, without a guest agent, every TCP forward.

Without a guest agent the guest's TCP listeners are read from
``/proc/net/tcp`` and ``/proc/net/tcp6`` by a shell loop that runs for as
long as the host agent does, in one SSH session over the master
(:data:`WATCH_SCRIPT`); it prints a line only when the set changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from .. import sshutil
from ..errors import LimaError
from ..guestagent import ports

log = logging.getLogger("lima_core.hostagent")

#: how often the shell loop reads /proc/net (seconds; busybox and coreutils sleep take fractions)
WATCH_TICK = 0.2
#: prints "ports <addr> <addr>..." (hex, as in /proc/net) whenever the set of TCP listeners changes
WATCH_SCRIPT = r"""
prev=x
while :; do
	cur=
	for f in /proc/net/tcp /proc/net/tcp6; do
		[ -r "$f" ] || continue
		while read -r _sl local _rem st _rest; do
			[ "$st" = 0A ] && cur="$cur $local"
		done <"$f"
	done
	if [ "$cur" != "$prev" ]; then
		echo "ports$cur" || exit 0
		prev=$cur
	fi
	sleep TICK
done
"""
#: prints "python3: yes" or "python3: no": whether the guest has what lima-guestagent runs with
#: (25-guestagent-base.sh looks for the same)
PYTHON_PROBE = ("if command -v python3 >/dev/null 2>&1 || command -v /usr/libexec/platform-python >/dev/null 2>&1; "
                "then echo 'python3: yes'; else echo 'python3: no'; fi")
CONTROL_TIMEOUT = 30.0


class ForwardFailed(LimaError):
    """The ControlMaster refused a forward."""


def _control(inst_dir: Path, name: str, op: str, flag: str, spec: str) -> subprocess.CompletedProcess:
    ssh = sshutil.command(inst_dir, name)
    return subprocess.run([*ssh[:-1], "-O", op, flag, spec, ssh[-1]], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=CONTROL_TIMEOUT)


def forward(inst_dir: Path, name: str, spec: str, *, reverse: bool = False, replace: bool = False) -> None:
    """``ssh -O forward -L spec`` (``-R`` with *reverse*); with *replace*, cancel the same forward first.

    :raises ForwardFailed: with ssh's reason.
    """
    flag = "-R" if reverse else "-L"
    if replace:
        cancel(inst_dir, name, spec, reverse=reverse)
    try:
        proc = _control(inst_dir, name, "forward", flag, spec)
    except subprocess.TimeoutExpired:
        raise ForwardFailed(f"ssh -O forward {flag} {spec} did not answer within {CONTROL_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise ForwardFailed(reason)


def cancel(inst_dir: Path, name: str, spec: str, *, reverse: bool = False) -> bool:
    """``ssh -O cancel``; whether the master said yes."""
    try:
        return _control(inst_dir, name, "cancel", "-R" if reverse else "-L", spec).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def run(inst_dir: Path, name: str, command: str, timeout: float = CONTROL_TIMEOUT) -> subprocess.CompletedProcess:
    """*command* in the guest through the master."""
    ssh = sshutil.command(inst_dir, name, tty=False)
    return subprocess.run([*ssh, "--", command], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def watch_command(inst_dir: Path, name: str, tick: float = WATCH_TICK) -> list[str]:
    """The ssh command running :data:`WATCH_SCRIPT` in the guest."""
    script = WATCH_SCRIPT.replace("TICK", f"{tick:g}")
    return [*sshutil.command(inst_dir, name, tty=False), "--", "/bin/sh -c " + shlex.quote(script)]


async def follow(inst_dir: Path, name: str, little_endian: bool, retry: float) -> AsyncIterator[set]:
    """The guest's TCP listeners, each time they change, from :data:`WATCH_SCRIPT` run over SSH (started
    again *retry* seconds after it ends; the ssh process is killed when the iteration stops)."""
    command = watch_command(inst_dir, name)
    failures = 0
    while True:
        proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while line := await proc.stdout.readline():
                now = parse_watch_line(line.decode(errors="replace"), little_endian)
                if now is not None:
                    failures = 0
                    yield now
            code = await proc.wait()
            err = (await proc.stderr.read()).decode(errors="replace").strip()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        failures += 1
        if failures == 1:
            log.warning("listing the guest's ports over SSH ended (exit status %s)%s; starting again", code,
                        f": {err}" if err else "")
        await asyncio.sleep(retry)


def parse_watch_line(line: str, little_endian: bool) -> set[tuple[str, str, int]] | None:
    """The listeners of one line of the watch script's output (None: not such a line)."""
    words = line.split()
    if not words or words[0] != "ports":
        return None
    out = set()
    for word in words[1:]:
        try:
            out.add(("tcp", *ports.parse_hex_address(word, little_endian)))
        except ValueError:
            continue
    return out
