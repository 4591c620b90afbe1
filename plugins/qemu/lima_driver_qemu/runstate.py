"""What QEMU says about the VM it runs: its run state, and whether the guest has halted for good.

A live QEMU process is not a running guest. QEMU pauses the VM when a disk
write fails (``io-error``: with the default ``werror=enospc``, a full host
disk), and keeps it paused after ``stop``, a guest panic or an internal
error; a guest that ran ``halt -f`` leaves QEMU "running" with every CPU
halted and interrupts off. In none of these states can the guest answer SSH
or the power button. :func:`query` asks QMP (``query-status``, and on x86
``info registers -a`` for the halted CPUs); the driver reports such a VM as
Broken (``inspect_status``) and ``stop`` kills it at once instead of pressing
the power button for three minutes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from . import qmp

#: QEMU run states a guest passes through and leaves by itself (a snapshot being saved or loaded, ...)
TRANSIENT = frozenset({"save-vm", "restore-vm", "finish-migrate", "inmigrate", "prelaunch"})
#: how long a status query may take: `lima list` waits for it
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
_IF = 0x200  # the x86 interrupt flag in RFLAGS/EFLAGS

_WHY = {
    "io-error": "QEMU paused the VM after a disk I/O error (QEMU run state 'io-error': is the host's disk full?)",
    "paused": "the VM is paused (QEMU run state 'paused')",
    "guest-panicked": "the guest kernel panicked (QEMU run state 'guest-panicked')",
    "internal-error": "QEMU stopped the VM after an internal error (QEMU run state 'internal-error')",
    "shutdown": "the guest has shut down but QEMU has not exited (QEMU run state 'shutdown')",
    "suspended": "the guest is suspended (QEMU run state 'suspended')",
    "watchdog": "the guest's watchdog fired and QEMU paused the VM (QEMU run state 'watchdog')",
}
HALTED = "the guest has halted: every CPU stopped with interrupts off (as after `halt -f`)"


@dataclasses.dataclass(frozen=True)
class RunState:
    """QEMU's run state (``running``, ``paused``, ``io-error``, ...) and whether all CPUs halted for good."""

    status: str
    halted: bool = False

    @property
    def problem(self) -> str:
        """Why the guest cannot run or power down, or "" when it can (or may, once a transient state ends)."""
        if self.status == "running":
            return HALTED if self.halted else ""
        if self.status in TRANSIENT:
            return ""
        return _WHY.get(self.status, f"the VM is not running (QEMU run state {self.status!r})")


def query(sock: Path, arch: str) -> RunState | None:
    """The run state of the VM behind QMP socket *sock*; None when QMP does not answer in time (QEMU
    serves one QMP client at a time: another command may hold it)."""
    commands: list[tuple[str, dict | None]] = [("query-status", None)]
    if arch == "x86_64":
        commands.append(("human-monitor-command", {"command-line": "info registers -a"}))
    try:
        results = qmp.run(sock, commands, connect_timeout=CONNECT_TIMEOUT, timeout=COMMAND_TIMEOUT)
    except (qmp.QMPUnavailable, qmp.QMPCommandError):
        return None
    status = results[0].get("status", "") if isinstance(results[0], dict) else ""
    registers = str(results[1]) if len(results) > 1 else ""
    return RunState(str(status), halted=status == "running" and halted_for_good(registers))


def halted_for_good(registers: str) -> bool:
    """True if ``info registers -a`` shows every CPU halted (``HLT=1``) with interrupts off: nothing but an
    NMI or a reset wakes it. An idle guest halts with interrupts on, and wakes at its next timer tick."""
    cpus = [block for block in re.split(r"^CPU#\d+\s*$", registers.replace("\r", ""), flags=re.M) if block.strip()]
    if not cpus:
        return False
    for block in cpus:
        hlt = re.search(r"\bHLT=(\d)", block)
        flags = re.search(r"\b[RE]FL=([0-9a-fA-F]+)", block)
        if hlt is None or flags is None or hlt[1] != "1" or int(flags[1], 16) & _IF:
            return False
    return True
