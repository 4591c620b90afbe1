"""A 64 KiB x86 firmware image that checks whether an accelerator can run a 64-bit guest.

Booted with ``-bios`` on q35 (plus ``-device isa-debug-exit,iobase=0xf4``),
it walks the path every x86_64 kernel takes, printing a letter to COM1 at
each step:

- ``A`` real mode, at the reset vector;
- ``B`` 32-bit protected mode (``lgdt``, CR0.PE, far jump);
- ``C`` paging in long mode (PAE page tables, EFER.LME, CR0.PG);
- ``D`` 64-bit code, then it writes 0x42 to the isa-debug-exit port and QEMU
  exits with status ``(0x42 << 1) | 1 = 133``.

Under TCG and a working KVM it prints ``ABCD`` and exits in well under a
second. Under KVM-PVM (``/dev/kvm`` present, but only PVM guests run) it
stops after ``A``, where a Debian kernel hangs silently.

Hand-assembled (no assembler needed at run time); each instruction is listed
with its bytes. The layout is fixed: 16-bit code at offset 0x00, 32-bit at
0x20, 64-bit at 0xB0, the GDT at 0xC0 and its descriptor at 0xE0, all in the
segment the ROM's last 64 KiB is aliased to (physical 0xF0000), and a far
jump there at the reset vector (0xFFF0).
"""

from __future__ import annotations

import struct

ROM_SIZE = 0x10000
BASE = 0xF0000  # where the ROM's low alias puts offset 0
PM32, LM64, GDT, GDTDESC, RESET = 0x20, 0xB0, 0xC0, 0xE0, 0xFFF0
EXIT_PORT = 0xF4
EXIT_VALUE = 0x42
#: QEMU's exit status when the probe reaches 64-bit mode.
EXIT_STATUS = (EXIT_VALUE << 1) | 1
#: What COM1 shows when every step passed.
MARKS = "ABCD"


def _u16(v: int) -> bytes:
    return struct.pack("<H", v)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _movl(addr: int, value: int) -> bytes:
    return b"\xc7\x05" + _u32(addr) + _u32(value)  # movl $value, addr


_CODE16 = b"".join([
    b"\xba\xf8\x03",                           # mov    $0x3f8, %dx
    b"\xb0" + b"A",                            # mov    $'A', %al
    b"\xee",                                   # out    %al, (%dx)
    b"\xfa",                                   # cli
    b"\x2e\x66\x0f\x01\x16" + _u16(GDTDESC),   # lgdtl  %cs:GDTDESC
    b"\x0f\x20\xc0",                           # mov    %cr0, %eax
    b"\x0c\x01",                               # or     $1, %al          (PE)
    b"\x0f\x22\xc0",                           # mov    %eax, %cr0
    b"\x66\xea" + _u32(BASE + PM32) + _u16(0x08),  # ljmpl $0x08, $PM32
])

_CODE32 = b"".join([
    b"\x66\xb8\x10\x00",                       # mov    $0x10, %ax
    b"\x8e\xd8",                               # mov    %eax, %ds
    b"\x8e\xc0",                               # mov    %eax, %es
    b"\x8e\xd0",                               # mov    %eax, %ss
    b"\x66\xba\xf8\x03",                       # mov    $0x3f8, %dx
    b"\xb0" + b"B",                            # mov    $'B', %al
    b"\xee",                                   # out    %al, (%dx)
    _movl(0x1000, 0x2003), _movl(0x1004, 0),   # PML4[0] = PDPT | present | rw
    _movl(0x2000, 0x3003), _movl(0x2004, 0),   # PDPT[0] = PD | present | rw
    _movl(0x3000, 0x0083), _movl(0x3004, 0),   # PD[0]   = 0 | 2 MiB page | present | rw
    b"\xb8" + _u32(0x1000),                    # mov    $0x1000, %eax
    b"\x0f\x22\xd8",                           # mov    %eax, %cr3
    b"\x0f\x20\xe0",                           # mov    %cr4, %eax
    b"\x83\xc8\x20",                           # or     $0x20, %eax      (PAE)
    b"\x0f\x22\xe0",                           # mov    %eax, %cr4
    b"\xb9" + _u32(0xC0000080),                # mov    $EFER, %ecx
    b"\x0f\x32",                               # rdmsr                   (clobbers %edx)
    b"\x0d" + _u32(0x100),                     # or     $0x100, %eax     (LME)
    b"\x0f\x30",                               # wrmsr
    b"\x0f\x20\xc0",                           # mov    %cr0, %eax
    b"\x0d" + _u32(0x80000000),                # or     $0x80000000, %eax (PG)
    b"\x0f\x22\xc0",                           # mov    %eax, %cr0
    b"\x66\xba\xf8\x03",                       # mov    $0x3f8, %dx
    b"\xb0" + b"C",                            # mov    $'C', %al
    b"\xee",                                   # out    %al, (%dx)
    b"\xea" + _u32(BASE + LM64) + _u16(0x18),  # ljmp   $0x18, $LM64
])

_CODE64 = b"".join([
    b"\xb0" + b"D",                            # mov    $'D', %al
    b"\xee",                                   # out    %al, (%dx)
    b"\xb0" + bytes([EXIT_VALUE]),             # mov    $0x42, %al
    b"\xe6" + bytes([EXIT_PORT]),              # out    %al, $0xf4       (isa-debug-exit)
    b"\xf4",                                   # 1: hlt
    b"\xeb\xfd",                               # jmp    1b
])

_GDT = b"".join(struct.pack("<Q", d) for d in (
    0,
    0x00CF9A000000FFFF,  # 0x08: 32-bit code, flat
    0x00CF92000000FFFF,  # 0x10: data, flat
    0x00AF9A000000FFFF,  # 0x18: 64-bit code
))

_RESET = b"\xea" + _u16(0) + _u16(BASE >> 4)  # ljmp $0xf000, $0


def rom() -> bytes:
    """The 64 KiB image; unused bytes are ``hlt``."""
    image = bytearray(b"\xf4" * ROM_SIZE)
    for offset, code, limit in ((0, _CODE16, PM32), (PM32, _CODE32, LM64), (LM64, _CODE64, GDT),
                                (GDT, _GDT, GDTDESC), (GDTDESC, _u16(len(_GDT) - 1) + _u32(BASE + GDT), RESET),
                                (RESET, _RESET, ROM_SIZE)):
        assert offset + len(code) <= limit, f"code at {offset:#x} overflows into {limit:#x}"
        image[offset:offset + len(code)] = code
    return bytes(image)
