"""`serve(driver)`: Lima's flags, the socket, signals, and --inspect-status."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lima_core.errors import ValidationError
from lima_core.external import serve, supervisor
from lima_core.external.build import write_executable
from lima_core.protocol import payload
from lima_core.testing.conformance import new_instance


def wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not supervisor.answers(path, 0.2):
        assert time.monotonic() < deadline, f"{path} never answered"
        time.sleep(0.02)


@pytest.mark.parametrize("flag_form", [["--inst-dir", "{d}"], ["-inst-dir", "{d}"], ["--inst-dir={d}"]])
def test_serves_on_name_socket_and_stops_on_sigterm(flag_form: list[str], driver_bin: Path, short_tmp: Path) -> None:
    d = short_tmp / "inst"
    d.mkdir()
    (d / "fake.drv.sock").write_text("stale")  # a stale file where the socket goes
    args = [a.format(d=d) for a in flag_form]
    proc = subprocess.Popen([str(driver_bin / "lima-driver-fake"), *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    sock = d / "fake.drv.sock"
    wait_for(sock)
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert out == b""  # logs go to stderr only
    assert b"serving on" in err
    assert not sock.exists()


def test_name_falls_back_to_info_name(short_tmp: Path) -> None:
    d = short_tmp / "inst"
    d.mkdir()
    code = "from lima_core.external import serve; from lima_core.testing.fakedriver import FakeDriver; " \
           "raise SystemExit(serve(FakeDriver))"
    proc = subprocess.Popen([sys.executable, "-c", code, "--inst-dir", str(d)], stderr=subprocess.DEVNULL)
    try:
        wait_for(d / "fake.drv.sock")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    ([], "--inst-dir is required"),
    (["--bogus"], "flag provided but not defined: -bogus"),
    (["--inst-dir"], "flag needs an argument"),
])
def test_bad_flags_give_one_clear_error(args: list[str], message: str, driver_bin: Path) -> None:
    proc = subprocess.run([str(driver_bin / "lima-driver-fake"), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inspect_status_protocol(driver_bin: Path, tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "inst", "fake", {"futureField": "kept"})
    inst.status = "Running"
    sent = payload.encode_inspect(inst)
    # the form Lima writes: one JSON string holding base64 of the instance JSON
    assert json.loads(base64.b64decode(json.loads(sent)))["name"] == "inst"
    proc = subprocess.run([str(driver_bin / "lima-driver-fake"), "--inspect-status"], input=sent,
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    reply = payload.decode_inspect(proc.stdout)
    assert reply.status == ""  # the fake driver lets the host decide from pid files
    assert reply.config is not None and reply.config.extra["futureField"] == "kept"
    assert proc.stdout.endswith(b"\n")


def test_inspect_status_rejects_garbage(driver_bin: Path) -> None:
    proc = subprocess.run([str(driver_bin / "lima-driver-fake"), "--inspect-status"], input=b"not json",
                          capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert b"malformed --inspect-status payload" in proc.stderr


def test_a_driver_named_by_a_string_is_imported_by_serve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "named_driver.py").write_text("from lima_core.testing.fakedriver import FakeDriver as Named\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "named_driver" not in sys.modules
    assert serve("named_driver:Named", ["lima-driver-fake", "--help"]) == 0
    assert "--inst-dir DIR" in capsys.readouterr().out
    assert "named_driver" in sys.modules


@pytest.mark.parametrize(("argv0", "name"), [
    ("/opt/lima/libexec/lima/lima-driver-other", "other"),  # the executable's name wins over info's
    ("lima-driver-other.exe", "fake"),  # not a driver's name off Windows (discovery would skip it): info's name
    ("python", "fake"),
])
def test_the_name_comes_from_argv0_by_limas_rule(argv0: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve("lima_core.testing.fakedriver:FakeDriver", [argv0, "--help"]) == 0
    assert f"A Lima external VM driver ({name})." in capsys.readouterr().out


@pytest.mark.parametrize(("target", "message"), [
    ("no_such_module_xyz:Driver", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("lima_core.testing.fakedriver:NoSuchDriver", "AttributeError"),
])
def test_a_driver_that_does_not_load_gives_one_clear_error(target: str, message: str, tmp_path: Path) -> None:
    exe = write_executable(tmp_path / "bin", "broken", target)
    proc = subprocess.run([str(exe), "--inst-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"lima-driver-broken: cannot load driver {target!r}: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.sock"))


def test_a_driver_package_loads_without_grpc() -> None:
    # main_for() names the driver; grpc is imported only when the console script runs.
    code = ("import sys, lima_driver_qemu, lima_driver_qemu.driver, lima_driver_vz, lima_driver_wsl2; "
            "print(callable(lima_driver_qemu.main), 'grpc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["True", "False"]


def test_sessions_keep_separate_driver_state(driver_bin: Path, short_tmp: Path) -> None:
    """A second client's configure does not overwrite the first's (Lima's sharp edge 6)."""
    from lima_core.external.client import connect

    d = short_tmp / "inst"
    a = connect(str(driver_bin / "lima-driver-fake"), "fake", d)
    b = connect(str(driver_bin / "lima-driver-fake"), "fake", d)
    try:
        a.configure(new_instance(d, "fake", {"vmOpts": {"fake": {"invalid": "from a"}}}))
        b.configure(new_instance(d, "fake"))
        with pytest.raises(ValidationError, match="from a"):
            a.validate()
        b.validate()
    finally:
        supervisor.stop_servers(d)
