"""Helpers for the fault-injection tests (a unique module name: tests import it by name)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml


def set_faults(lima_home: Path, name: str, **faults: Any) -> None:
    """Replace the instance's ``vmOpts.fake`` with *faults* (none: remove them)."""
    path = lima_home / name / "lima.yaml"
    data = yaml.safe_load(path.read_text())
    if faults:
        data.setdefault("vmOpts", {})["fake"] = faults
    else:
        (data.get("vmOpts") or {}).pop("fake", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def status(lima: Any, name: str) -> dict:
    return json.loads(lima("list", "--format", "json", name, ok=True).stdout)


def quick_status(name: str) -> dict:
    """The status from the pid files, as `lima list` computes it, without running the driver's
    --inspect-status (a process per call: slow, and the fake driver answers "" anyway)."""
    from lima_core import store

    return store.inspect(name, driver_status=False).to_json()


def wait_status(name: str, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        inst = quick_status(name)
        if inst["status"] == want or time.monotonic() > deadline:
            return inst
        time.sleep(0.1)


def events(lima_home: Path, name: str) -> list[dict]:
    path = lima_home / name / "ha.stdout.log"
    return [json.loads(line)["status"] for line in path.read_text().splitlines() if line.strip()]


def one_error_line(result: Any, fragment: str = "") -> str:
    """The CLI failed the way users should see it: exit 1, the last stderr line `lima: ...`, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        result.exception
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("lima: ") and fragment in line, result.stderr
    return line


class Kept:
    """Digests of the files no failure may delete or change: disk, lima.yaml, snapshots."""

    def __init__(self, inst_dir: Path) -> None:
        self.inst_dir = inst_dir
        self.before = self._digests(with_yaml=True)
        assert "disk" in self.before and "lima.yaml" in self.before

    def _digests(self, with_yaml: bool) -> dict[str, str]:
        out = {}
        for path in [self.inst_dir / "disk", self.inst_dir / "lima.yaml",
                     *sorted((self.inst_dir / "fake-snapshots").glob("*"))]:
            if path.name == "lima.yaml" and not with_yaml:
                continue
            if path.exists():
                out[str(path.relative_to(self.inst_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def check(self, yaml_edited: bool = False) -> None:
        """Everything is still there; lima.yaml unchanged unless the test edited it itself."""
        now = self._digests(with_yaml=True)
        assert set(now) == set(self.before), (sorted(self.before), sorted(now))
        for key, digest in self.before.items():
            if key != "lima.yaml" or not yaml_edited:
                assert now[key] == digest, f"{key} changed"


def lima_process(*args: str, **kwargs: Any) -> subprocess.Popen:
    """A real `lima` process that turns Ctrl-C into KeyboardInterrupt even if this test run ignores
    SIGINT (as a background job of a non-interactive shell does, and the child would inherit).

    The handler is installed by the child itself, first thing: a ``preexec_fn`` would run Python
    between fork and exec, which can deadlock in a process with threads (this one has grpc's).
    """
    return subprocess.Popen([sys.executable, "-c", _SIGINT_THEN_LIMA, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


_SIGINT_THEN_LIMA = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "runpy.run_module('lima_core', run_name='__main__', alter_sys=True)")


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a lima_process, which must end within *timeout* seconds."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"lima did not finish within {timeout:g} s: {err}") from None
    return proc.returncode, out, err


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a terminal sends it."""
    proc.send_signal(signal.SIGINT)


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def processes_of(lima_home: Path) -> list[str]:
    """Live processes started for *lima_home* (host agents, drivers, VMs: they inherit LIMA_HOME)."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["pid"] == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if proc.environ().get("LIMA_HOME") == str(lima_home):
                out.append(f"{proc.info['pid']}: {' '.join(proc.info['cmdline'] or [])}")
        except psutil.Error:
            continue
    return out


def no_processes_of(lima_home: Path, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (found := processes_of(lima_home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`lima ARGS` as a real process (stdin closed), which must end within *timeout* and print no traceback;
    a failure must be one `lima: ...` line and exit 1."""
    proc = subprocess.run([sys.executable, "-m", "lima_core", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, errors="replace", timeout=timeout, env=env)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, (args, proc.stderr)
    if proc.returncode != 0:
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("lima: "), (args, proc)
    return proc


def hints(text: str) -> list[list[str]]:
    """The commands a message names: each `lima ...` between backquotes, as argument lists."""
    import re
    import shlex

    return [shlex.split(m)[1:] for m in re.findall(r"`(lima [^`]*)`", text)]
