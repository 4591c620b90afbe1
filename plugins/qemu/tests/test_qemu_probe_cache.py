"""QEMU's answers (version, -accel/-netdev/-machine/-cpu help) are kept on disk across processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from lima_driver_qemu import binary

FAKE_QEMU = """#!/bin/sh
echo "$@" >> "$0.calls"
case "$*" in
  --version) echo "QEMU emulator version 8.2.1" ;;
  *"-accel help"*)
    if [ -e "$0.noaccel" ]; then echo boom >&2; exit 1; fi
    printf 'Accelerators supported in QEMU binary:\\ntcg\\nkvm\\n' ;;
  *"-netdev help"*) echo user ;;
  *"-machine help"*) echo q35 ;;
  *"-cpu help"*) echo max ;;
esac
"""


def fake_qemu(tmp_path: Path) -> Path:
    exe = tmp_path / "qemu-system-x86_64"
    exe.write_text(FAKE_QEMU)
    exe.chmod(0o755)
    return exe


def calls(exe: Path) -> int:
    path = Path(f"{exe}.calls")
    return len(path.read_text().splitlines()) if path.exists() else 0


def new_process() -> None:
    """What a new lima process starts with: nothing cached in memory."""
    binary._version.cache_clear()
    binary._features.cache_clear()


def test_a_new_process_does_not_ask_qemu_again(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path)
    assert binary.version(str(exe)) == (8, 2, 1)
    assert binary.features(str(exe), "q35").has_accel("kvm")
    assert calls(exe) == 5
    new_process()
    assert binary.version(str(exe)) == (8, 2, 1)
    features = binary.features(str(exe), "q35")
    assert features.has_accel("tcg") and features.has_cpu("max") and "q35" in features.machine_help
    assert calls(exe) == 5
    assert (Path(os.environ["XDG_CACHE_HOME"]) / "lima" / binary.CACHE_FILE).is_file()


def test_a_changed_binary_is_asked_again(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path)
    binary.features(str(exe), "q35")
    new_process()
    exe.write_text(FAKE_QEMU + "# upgraded\n")
    later = time.time() + 5
    os.utime(exe, (later, later))
    binary.features(str(exe), "q35")
    assert calls(exe) == 8


def test_failures_are_not_kept(tmp_path: Path) -> None:
    exe = fake_qemu(tmp_path)
    Path(f"{exe}.noaccel").touch()
    for _ in range(2):
        new_process()
        try:
            binary.features(str(exe), "q35")
        except Exception as exc:  # ValidationError
            assert "boom" in str(exc)
        else:
            raise AssertionError("features() should fail while -accel help fails")
    assert calls(exe) == 2
    Path(f"{exe}.noaccel").unlink()
    new_process()
    assert binary.features(str(exe), "q35").has_accel("tcg")
