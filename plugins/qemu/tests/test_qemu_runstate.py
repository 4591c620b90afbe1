"""runstate: which QEMU run states the guest cannot leave by itself, and `info registers -a` read for halted CPUs.

The real states (a guest paused on a full disk, a guest that ran ``halt -f``) are exercised with QEMU in
tests/faults/test_qemu_runstate.py; here the parsing, on output captured from QEMU 7.2.
"""

from __future__ import annotations

import pytest

from lima_driver_qemu.runstate import HALTED, RunState, halted_for_good

IDLE = """CPU#0
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000001 RDX=0000000000012b6b
RIP=ffffffff81a592eb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
"""
HALT_F = """CPU#0
RIP=ffffffff8103fc9b RFL=00000092 [--S-A--] CPL=0 II=0 A20=1 SMM=0 HLT=1
"""
BUSY = """CPU#0
RIP=00007f3a1c2d9e1b RFL=00000202 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0
"""
CLI_RUNNING = """CPU#0
RIP=ffffffff8103fc9b RFL=00000092 [--S-A--] CPL=0 II=0 A20=1 SMM=0 HLT=0
"""


@pytest.mark.parametrize(("registers", "halted"), [
    (IDLE, False),  # an idle guest halts with interrupts on: its timer wakes it
    (HALT_F, True),
    (BUSY, False),
    (CLI_RUNNING, False),  # interrupts off but executing
    (HALT_F + IDLE.replace("CPU#0", "CPU#1"), False),  # one CPU still idles
    (HALT_F + HALT_F.replace("CPU#0", "CPU#1"), True),
    (HALT_F.replace("RFL", "EFL"), True),  # a 32-bit guest
    ("", False),
    ("unknown command: 'info registers -a'\r\n", False),
])
def test_halted_for_good(registers: str, halted: bool) -> None:
    assert halted_for_good(registers.replace("\n", "\r\n")) is halted


@pytest.mark.parametrize(("state", "problem"), [
    (RunState("running"), ""),
    (RunState("running", halted=True), HALTED),
    (RunState("save-vm"), ""),  # `lima snapshot create` while running: over in a moment
    (RunState("restore-vm"), ""),
    (RunState("io-error"), "disk I/O error"),
    (RunState("paused"), "paused"),
    (RunState("guest-panicked"), "panicked"),
    (RunState("colo"), "'colo'"),  # any other state is named as QEMU names it
])
def test_problem(state: RunState, problem: str) -> None:
    assert (problem in state.problem) if problem else state.problem == ""
