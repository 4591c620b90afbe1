"""Status from `wsl.exe --list --verbose`: UTF-16LE, the state column verbatim, Lima's hints."""

from __future__ import annotations

import pytest
from lima_driver_wsl2 import status, wsl
from wsl2_helpers import FakeWSL

from lima_core.errors import DriverError

LISTING = ("  NAME            STATE           VERSION\r\n"
           "* Ubuntu          Stopped         2\r\n"
           "  lima-default    Running         2\r\n"
           "  lima-dev        Installing      2\r\n"
           "  lima-de         Stopped         2\r\n")


def utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


@pytest.mark.parametrize("name, state", [("default", "Running"), ("dev", "Installing"), ("de", "Stopped"),
                                         ("Ubuntu", "Uninitialized"), ("missing", "Uninitialized")])
def test_parse_a_listing(name: str, state: str) -> None:
    assert status.parse(wsl.decode(utf16(LISTING)), name) == state


def test_the_default_marker_is_skipped() -> None:
    listing = "  NAME      STATE           VERSION\r\n* lima-x    Running         2\r\n"
    assert status.parse(wsl.decode(utf16(listing)), "x") == "Running"


@pytest.mark.parametrize("word", ["Wird ausgeführt", "実行中", "En cours d'exécution"])
def test_localised_states_pass_through_verbatim(word: str) -> None:
    listing = f"  NAME      STATUS          VERSION\r\n  lima-x    {word}   2\r\n"
    assert status.parse(wsl.decode(utf16(listing)), "x") == word


@pytest.mark.parametrize("text", [
    # today's wsl.exe: no error code (WslClient.cpp leaves it out for WSL_E_DEFAULT_DISTRO_NOT_FOUND)
    ("Windows Subsystem for Linux has no installed distributions.\r\nYou can resolve this by installing a "
     "distribution with the instructions below:\r\n\r\nUse 'wsl.exe --list --online' to list available "
     "distributions\r\nand 'wsl.exe --install <Distro>' to install.\r\n"),
    # older wsl.exe, with the code Lima looks for
    ("Windows Subsystem for Linux has no installed distributions.\r\n\r\nUse 'wsl.exe --list --online' ...\r\n"
     "Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND\r\n"),
    # older still: the Microsoft Store hint
    ("Windows Subsystem for Linux has no installed distributions.\r\n"
     "Distributions can be installed by visiting the Microsoft Store:\r\nhttps://aka.ms/wslstore\r\n"),
])
def test_no_distributions_means_the_instance_is_not_imported_yet(text: str) -> None:
    assert status.parse(wsl.decode(utf16(text)), "x") == "Uninitialized"
    assert status.parse(text, "x") == "Uninitialized"  # WSL_UTF8=1: the same text in UTF-8


def test_the_version_column_is_read() -> None:
    listing = "  NAME      STATE           VERSION\r\n  lima-x    Stopped         1\r\n  lima-y    Running  2\r\n"
    assert status.parse_entry(listing, "x") == status.Entry("Stopped", "1")
    assert status.parse_entry(listing, "y") == status.Entry("Running", "2")
    assert status.parse_entry(listing, "z") == status.Entry("Uninitialized", "")


def test_empty_output_is_an_error() -> None:
    with pytest.raises(status.StatusError, match="try running `wsl --list --verbose` to debug"):
        status.parse("", "x")


def test_decode() -> None:
    assert wsl.decode(b"\xff\xfe" + utf16("Running")) == "Running"
    assert wsl.decode(utf16("Läuft")) == "Läuft"
    assert wsl.decode("Läuft (WSL_UTF8=1)".encode()) == "Läuft (WSL_UTF8=1)"
    assert wsl.decode(b"") == ""


# -- through the fake wsl.exe ---------------------------------------------------------------------


def test_get_through_the_fake(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "Ubuntu", "state": "Stopped", "version": 2},
                      {"name": "lima-a", "state": "Running", "version": 2}], default="Ubuntu")
    assert status.get("a") == "Running"
    assert status.get("b") == "Uninitialized"
    fake_wsl.behave(states={"Running": "Wird ausgeführt"})
    assert status.get("a") == "Wird ausgeführt"


def test_the_fake_prints_utf16le_as_wsl_does(fake_wsl: FakeWSL) -> None:
    import subprocess

    out = subprocess.run([str(fake_wsl.exe), "--list", "--verbose"], capture_output=True).stdout
    assert out == utf16("  NAME      STATE           VERSION\r\n* Ubuntu    Stopped         2\r\n")


@pytest.mark.parametrize("legacy", [False, True])
def test_get_with_no_distributions(fake_wsl: FakeWSL, legacy: bool) -> None:
    fake_wsl.distros([])
    fake_wsl.behave(legacy=legacy)
    assert status.get("x") == "Uninitialized"


def test_a_failing_wsl_exe(fake_wsl: FakeWSL) -> None:
    fake_wsl.behave(fail={"--list": "The Windows Subsystem for Linux is not enabled."})
    with pytest.raises(status.StatusError, match=r"failed to run `wsl --list --verbose`: `wsl.exe --list --verbose` "
                                                 r"exited with status 255 \(out='The Windows Subsystem"):
        status.get("x")


def test_no_wsl_exe_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DriverError, match=r"cannot run wsl.exe \(on PATH\): not found"):
        status.get("x")
