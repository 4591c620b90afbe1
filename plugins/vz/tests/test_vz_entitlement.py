"""The virtualization entitlement: the Mach-O reader, ``lima-driver-vz --entitle`` and the re-exec into its copy.

``codesign`` is a fake here (a script on PATH that records its arguments and
appends the entitlements it was given to the file, so the "signed" copy
differs and ``--display`` can show them); the interpreter is a small
synthetic Mach-O file.
"""

from __future__ import annotations

import json
import os
import plistlib
import struct
import sys
from pathlib import Path

import pytest
from lima_driver_vz import entitlement, macho, run

from lima_core.errors import DriverError

LC_LOAD_DYLIB, LC_RPATH = 0xC, 0x8000001C
LIBPYTHON = "@executable_path/../lib/libpython3.12.dylib"

FAKE_CODESIGN = '''#!{python}
import json, os, plistlib, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CODESIGN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
target = args[-1]
if "--sign" in args:
    keys = sorted(plistlib.load(open(args[args.index("--entitlements") + 1], "rb")))
    with open(target, "ab") as f:
        f.write(b"\\nFAKESIG " + json.dumps(keys).encode())
elif "--display" in args:
    data = open(target, "rb").read()
    if b"\\nFAKESIG " in data:
        print("[Key] " + "\\n[Key] ".join(json.loads(data.rsplit(b"\\nFAKESIG ", 1)[1])))
else:
    sys.exit("codesign: unexpected arguments")
'''


def _command(cmd: int, fixed: int, string: str, *fields: int) -> bytes:
    """A load command: cmd, cmdsize, the string's offset, *fields*, then the string; 8-byte aligned."""
    text = string.encode() + b"\0"
    text += b"\0" * (-(fixed + len(text)) % 8)
    return struct.pack(f"<III{len(fields)}I", cmd, fixed + len(text), fixed, *fields) + text


def make_macho(dylibs: list[str], rpaths: list[str] = (), fat: bool = False) -> bytes:  # type: ignore[assignment]
    cmds = b"".join(_command(LC_LOAD_DYLIB, 24, name, 2, 0, 0) for name in dylibs)
    cmds += b"".join(_command(LC_RPATH, 12, path) for path in rpaths)
    header = struct.pack("<IiiIIIII", macho.MH_MAGIC_64, 0x0100000C, 0, 2, len(dylibs) + len(rpaths), len(cmds), 0, 0)
    thin = header + cmds + b"\0" * 64
    if not fat:
        return thin
    head = struct.pack(">II", macho.FAT_MAGIC, 1) + struct.pack(">IIIII", 0x0100000C, 0, 4096, len(thin), 12)
    return head.ljust(4096, b"\0") + thin


# -- the Mach-O reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("fat", [False, True])
def test_references_thin_and_universal(tmp_path: Path, fat: bool) -> None:
    exe = tmp_path / "python3.12"
    exe.write_bytes(make_macho(["/usr/lib/libSystem.B.dylib", LIBPYTHON, "@rpath/libz.dylib"],
                               ["@executable_path/../Frameworks", "/opt/lib"], fat=fat))
    refs = macho.references(exe)
    assert refs.dylibs == ("/usr/lib/libSystem.B.dylib", LIBPYTHON, "@rpath/libz.dylib")
    assert refs.rpaths == ("@executable_path/../Frameworks", "/opt/lib")
    assert refs.executable_relative() == ["../lib/libpython3.12.dylib", "../Frameworks/libz.dylib"]


def test_not_a_macho(tmp_path: Path) -> None:
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(macho.NotMachO):
        macho.references(tmp_path / "script")


# -- lima-driver-vz --entitle ---------------------------------------------------------------------------


@pytest.fixture
def codesign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "codesign-bin"
    bin_dir.mkdir()
    tool = bin_dir / "codesign"
    tool.write_text(FAKE_CODESIGN.format(python=sys.executable))
    tool.chmod(0o755)
    log = tmp_path / "codesign.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CODESIGN_LOG", str(log))
    return log


@pytest.fixture
def python_install(tmp_path: Path) -> tuple[Path, Path]:
    """A base Python (bin/python3.12 loading ../lib/libpython3.12.dylib) and a venv made from it."""
    base = tmp_path / "base"
    (base / "bin").mkdir(parents=True)
    (base / "lib").mkdir()
    (base / "lib" / "libpython3.12.dylib").write_bytes(b"libpython")
    exe = base / "bin" / "python3.12"
    exe.write_bytes(make_macho(["/usr/lib/libSystem.B.dylib", LIBPYTHON]))
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\n")
    return exe, venv


def test_entitle_makes_a_signed_copy_the_venv_finds_its_library_from(codesign: Path,
                                                                      python_install: tuple[Path, Path]) -> None:
    exe, venv = python_install
    copy = entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)
    assert copy == venv / "bin" / "lima-vz-python" and os.access(copy, os.X_OK)
    assert copy.read_bytes().startswith(exe.read_bytes())
    # dyld resolves @executable_path/../lib/... next to the copy: a link there points at the real library
    assert (venv / "lib" / "libpython3.12.dylib").resolve() == exe.parent.parent / "lib" / "libpython3.12.dylib"
    calls = [json.loads(line) for line in codesign.read_text().splitlines()]
    sign, display = calls
    assert sign[:5] == ["--force", "--sign", "-", "--entitlements", sign[4]] and sign[-1].endswith(".tmp")
    assert display[:3] == ["--display", "--entitlements", "-"]
    assert not Path(sign[4]).exists()  # the entitlements plist is temporary
    stamp = json.loads((venv / "bin" / "lima-vz-python.json").read_text())
    assert stamp["source"] == str(exe) and stamp["links"] == [str(venv / "lib" / "libpython3.12.dylib")]
    assert entitlement.copy_status(copy, exe) is None


def test_the_plist_holds_the_entitlement(tmp_path: Path, codesign: Path, python_install: tuple[Path, Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    exe, venv = python_install
    seen: list[dict] = []
    real_run = entitlement._run

    def spy(args: list[str], what: str) -> str:
        if "--entitlements" in args and "--sign" in args:
            seen.append(plistlib.loads(Path(args[args.index("--entitlements") + 1]).read_bytes()))
        return real_run(args, what)

    monkeypatch.setattr(entitlement, "_run", spy)
    entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)
    assert seen == [{"com.apple.security.virtualization": True}]


def test_a_copy_of_another_python_build_is_not_used(codesign: Path, python_install: tuple[Path, Path]) -> None:
    exe, venv = python_install
    copy = entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)
    exe.write_bytes(make_macho(["/usr/lib/libSystem.B.dylib"]))  # Python was upgraded in place
    assert "was made from another Python build" in (entitlement.copy_status(copy, exe) or "")
    message = entitlement.missing_message(exe, copy)
    assert message.endswith("run `lima-driver-vz --entitle` again")


def test_a_signature_without_the_entitlement_is_an_error(tmp_path: Path, codesign: Path,
                                                         python_install: tuple[Path, Path]) -> None:
    exe, venv = python_install
    (tmp_path / "codesign-bin" / "codesign").write_text("#!/bin/sh\nexit 0\n")  # signs, but grants nothing
    with pytest.raises(DriverError, match="its signature does not list com.apple.security.virtualization"):
        entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)
    assert not (venv / "bin" / "lima-vz-python").exists()
    assert [p.name for p in (venv / "bin").iterdir()] == []  # no temporary file left


def test_a_library_outside_the_environment_is_refused(codesign: Path, tmp_path: Path) -> None:
    exe = tmp_path / "base" / "bin" / "python3"
    exe.parent.mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libpython.dylib").write_bytes(b"x")
    exe.write_bytes(make_macho(["@executable_path/../../lib/libpython.dylib"]))
    venv = tmp_path / "venv"
    with pytest.raises(DriverError, match="which would fall outside"):
        entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)


def test_an_unwritable_environment_says_to_make_a_venv(codesign: Path, python_install: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    exe, _ = python_install
    locked = tmp_path / "locked"
    (locked / "bin").mkdir(parents=True)
    (locked / "bin").chmod(0o555)
    with pytest.raises(DriverError, match="make a virtual environment you own"):
        entitlement.entitle(exe, entitlement.copy_path(locked), root=locked)


def test_entitle_on_linux_says_it_is_a_macos_feature(capsys: pytest.CaptureFixture) -> None:
    if sys.platform == "darwin":
        pytest.skip("checks a host that is not a Mac")
    assert run(["lima-driver-vz", "--entitle"]) == 1
    assert "the entitlement is a macOS code-signing feature" in capsys.readouterr().err


# -- the re-exec ----------------------------------------------------------------------------------------------


@pytest.fixture
def entitled(codesign: Path, python_install: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    exe, venv = python_install
    copy = entitlement.entitle(exe, entitlement.copy_path(venv), root=venv)
    monkeypatch.setattr(entitlement, "interpreter", lambda: exe)
    monkeypatch.setattr(entitlement, "copy_path", lambda prefix=None: copy)
    monkeypatch.delenv(entitlement.REEXEC_ENV, raising=False)
    return exe, copy


def test_lima_driver_vz_becomes_the_entitled_copy(entitled: tuple[Path, Path]) -> None:
    _, copy = entitled
    calls: list[tuple] = []
    entitlement.reexec(["lima-driver-vz", "--inst-dir", "/x"], execve=lambda *a: calls.append(a), platform="darwin")
    ((path, argv, env),) = calls
    assert path == str(copy) and argv == [str(copy), "-m", "lima_driver_vz", "--inst-dir", "/x"]
    assert env[entitlement.REEXEC_ENV] == "1"


@pytest.mark.parametrize("case", ["linux", "already re-executed", "stale copy", "is the copy"])
def test_no_reexec(entitled: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    exe, copy = entitled
    platform = "linux" if case == "linux" else "darwin"
    if case == "already re-executed":
        monkeypatch.setenv(entitlement.REEXEC_ENV, "1")
    if case == "stale copy":
        exe.write_bytes(b"another build")
    if case == "is the copy":
        monkeypatch.setattr(entitlement, "interpreter", lambda: copy)
    calls: list[tuple] = []
    entitlement.reexec(["lima-driver-vz"], execve=lambda *a: calls.append(a), platform=platform)
    assert calls == []


def test_the_copy_without_the_entitlement_says_to_sign_again(entitled: tuple[Path, Path]) -> None:
    _, copy = entitled
    assert entitlement.missing_message(copy, copy).endswith(
        "its signature does not carry the entitlement: run `lima-driver-vz --entitle` again")
