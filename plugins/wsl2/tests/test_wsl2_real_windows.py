"""What a real Windows does to wsl2, through the strict fake wsl.exe: one test per item of issue 22 (wsl2).

Each test shows the fake behaving as wsl.exe does (so a driver bug fails here
as on Windows) and the driver coping with it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lima_driver_wsl2 import provision, sshaddress, status, wsl
from wsl2_helpers import FakeWSL

from lima_core.errors import DriverError, StartFailed

NOISE = "<3>WSL ({pid}) ERROR: UtilTranslatePathList:2866: Failed to translate {entry}"


def fake(fake_wsl: FakeWSL, *args: str, env: dict | None = None, **kw: Any) -> subprocess.CompletedProcess:

    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([str(fake_wsl.exe), *args], timeout=30, env={**os.environ, **(env or {})}, **kw)


# -- stderr noise, kept apart ---------------------------------------------------------------------------------


def test_every_launch_writes_the_path_noise_to_stderr(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])
    out = fake(fake_wsl, "-d", "lima-x", "--exec", "hostname", "-i")
    assert out.stdout == b"127.0.1.1\n"
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 2 and all(wsl.PATH_NOISE.match(line) for line in lines)
    assert lines[0].endswith(r"Failed to translate C:\Program Files\PowerShell\7")
    merged = fake(fake_wsl, "-d", "lima-x", "--exec", "hostname", "-i", stderr=subprocess.STDOUT)
    assert merged.stdout.decode().splitlines()[0].startswith("<3>WSL")  # what merging streams would parse


def test_the_boot_scripts_path_ignores_the_noise(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])
    assert provision.to_linux_path("lima-x", r"C:\Users\me\AppData\Local\Temp\boot.sh") == \
        "C:/Users/me/AppData/Local/Temp/boot.sh"


def test_the_ssh_address_ignores_the_noise(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])
    fake_wsl.behave(ip="172.28.1.5")
    assert sshaddress.discover("x") == "172.28.1.5"


def test_errors_show_stderr_without_the_noise(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Running", "version": 2}])
    fake_wsl.behave(shell="busybox", ip="not-an-ip", hostname_i="127.0.1.1")
    with pytest.raises(DriverError) as err:
        sshaddress.discover("x")
    assert "UtilTranslatePathList" not in err.value.message


# -- encodings: WSL_UTF8, and UTF-16 from wsl.exe that ignores it ---------------------------------------------


def test_every_call_sets_wsl_utf8(make: Callable, fake_wsl: FakeWSL) -> None:
    host, inst = make()
    host.inspect_status(inst.copy())
    status.get("inst")
    assert fake_wsl.environments() and all(e["WSL_UTF8"] == "1" for e in fake_wsl.environments())


def test_the_fake_speaks_utf16_unless_wsl_utf8_is_honoured(fake_wsl: FakeWSL) -> None:
    text = "There is no distribution with the supplied name.\r\nError code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n"
    assert fake(fake_wsl, "--terminate", "nope").stdout == text.encode("utf-16-le")
    assert fake(fake_wsl, "--terminate", "nope", env={"WSL_UTF8": "1"}).stdout == text.encode()
    fake_wsl.behave(legacy=True)  # an inbox wsl.exe that does not know WSL_UTF8
    assert fake(fake_wsl, "--terminate", "nope", env={"WSL_UTF8": "1"}).stdout == text.encode("utf-16-le")


@pytest.mark.parametrize("legacy", [False, True])
def test_wsl_exes_own_errors_are_read_in_either_encoding(fake_wsl: FakeWSL, legacy: bool) -> None:
    fake_wsl.behave(legacy=legacy, warning="wsl: A localhost proxy configuration was detected but not mirrored "
                                           "into WSL.")
    with pytest.raises(DriverError) as err:
        wsl.terminate("lima-nope")
    message = err.value.message
    assert "out='There is no distribution with the supplied name.\\r\\nError code: " in message
    assert "err='wsl: A localhost proxy configuration was detected but not mirrored into WSL.'" in message
    assert "\x00" not in message


@pytest.mark.parametrize("legacy", [False, True])
def test_wsl_exes_error_in_place_of_a_guest_programs_output(fake_wsl: FakeWSL, legacy: bool) -> None:
    """When wsl.exe cannot run the command at all, stdout holds wsl.exe's own (UTF-16LE) error, not UTF-8."""
    fake_wsl.behave(legacy=legacy)
    with pytest.raises(DriverError) as err:
        provision.to_linux_path("lima-nope", r"C:\x.sh")
    assert "out='There is no distribution with the supplied name." in err.value.message
    assert "\x00" not in err.value.message


def test_decode_mixed_streams() -> None:
    utf16 = "wsl: Warnung: Ausführung\r\n".encode("utf-16-le")
    noise = (NOISE.format(pid=9, entry=r"C:\Program Files\x") + "\n").encode()
    assert wsl.decode(noise + utf16) == NOISE.format(pid=9, entry=r"C:\Program Files\x") + \
        "\nwsl: Warnung: Ausführung\r\n"
    assert wsl.decode(utf16 + noise) == "wsl: Warnung: Ausführung\r\n" + \
        NOISE.format(pid=9, entry=r"C:\Program Files\x") + "\n"
    assert wsl.decode(b"\xff\xfe" + "  NAME  STATE\r\n* 実行中\r\n".encode("utf-16-le")) == "  NAME  STATE\r\n* 実行中\r\n"
    assert wsl.without_noise(wsl.decode(noise + utf16)) == "wsl: Warnung: Ausführung"


# -- no distributions ------------------------------------------------------------------------------------------


def test_no_distributions_is_todays_text_without_an_error_code(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([])
    out = fake(fake_wsl, "--list", "--verbose")
    text = out.stdout.decode("utf-16-le")
    assert out.returncode == 255 and text.startswith("Windows Subsystem for Linux has no installed distributions.")
    assert "You can resolve this by installing a distribution" in text and "Error code" not in text


# -- the WSL version ----------------------------------------------------------------------------------------------


def test_import_honours_the_default_version(fake_wsl: FakeWSL, rootfs: Path, tmp_path: Path) -> None:
    fake_wsl.distros([], default=None)
    data = fake_wsl.listed()
    data["default_version"] = 1  # wsl --set-default-version 1
    (fake_wsl.state / "distros.json").write_text(json.dumps(data))
    assert fake(fake_wsl, "--import", "plain", str(tmp_path / "p"), str(rootfs)).returncode == 0
    assert fake(fake_wsl, "--import", "two", str(tmp_path / "t"), str(rootfs), "--version", "2").returncode == 0
    versions = {d["name"]: d["version"] for d in fake_wsl.listed()["distros"]}
    assert versions == {"plain": 1, "two": 2}


def test_the_driver_imports_wsl_2_on_a_host_whose_default_is_wsl_1(make: Callable, fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([], default=None)
    data = fake_wsl.listed()
    data["default_version"] = 1
    (fake_wsl.state / "distros.json").write_text(json.dumps(data))
    host, inst = make()
    (Path(inst.dir) / "image").write_bytes(b"tar")
    handle = host.start()
    fake_wsl.wait_for_keep_alive(instance_dir=inst.dir)
    (distro,) = fake_wsl.listed()["distros"]
    assert distro["version"] == 2
    host.stop()
    handle.next(timeout=30)


def test_a_wsl_1_distro_is_refused_with_the_reason(make: Callable, fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-inst", "state": "Stopped", "version": 1}])
    host, inst = make()
    with pytest.raises(StartFailed) as err:
        host.start()
    assert err.value.message == ("the WSL distribution lima-inst is registered as WSL 1, where the guest agent "
                                 "cannot run (it needs WSL 2's Hyper-V socket); convert it with "
                                 "`wsl --set-version lima-inst 2`")
    assert not any(call[:1] == ["--distribution"] for call in fake_wsl.calls())


# -- the login shell of `-d NAME` ----------------------------------------------------------------------------------


def test_d_name_without_a_command_runs_a_login_shell_that_reads_stdin(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Stopped", "version": 2}])
    proc = subprocess.Popen([str(fake_wsl.exe), "-d", "lima-x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(1.0)  # the shell waits for commands while stdin is open
    out, _ = proc.communicate(b"exit 3\n", timeout=30)
    assert proc.returncode == 3
    assert fake(fake_wsl, "-d", "lima-x", stdin=subprocess.DEVNULL).returncode == 0


def test_the_driver_starts_the_distro_with_stdin_closed(fake_wsl: FakeWSL) -> None:
    fake_wsl.distros([{"name": "lima-x", "state": "Stopped", "version": 2}])
    wsl.start_distro("lima-x")  # would wait forever on an open stdin
    assert fake_wsl.listed()["distros"][0]["state"] == "Running"
