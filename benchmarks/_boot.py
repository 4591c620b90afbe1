"""Booting the test guest, for B1 and B6: ``lima start`` (internal or external qemu) and raw QEMU.

One instance is created from ``templates/test-guest.yaml`` in a private
LIMA_HOME and started once (the warm-up, which also settles the KVM probe
cache). While it runs, the exact command line its qemu was started with is
read from ``/proc/<qemu pid>/cmdline``. The floor runs that command directly:
in a separate directory holding copies of the instance's disk and
cidata.iso (and links to its kernel and initrd), with the instance directory
replaced by that directory in every argument and a fresh SSH port in the
``hostfwd`` rule.

SSH-ready means the same on both sides, the host agent's own test
(``HostAgent._wait_ready``, one try of which is ``hostagent.readiness.boot_done``): wait
for the guest's SSH banner on the forwarded port (a new connection every
0.3 s, up to 2.3 s), then ``ssh -F <dir>/ssh.config -o ConnectTimeout=2 -T
lima-<name> -- cat /run/lima-boot-done`` prints this boot's instance id;
tried again 0.3 s (``SSH_POLL_INTERVAL``) after a miss. For ``lima start`` the
clock runs from spawning the command until it exits after "READY"; for raw
QEMU, from spawning qemu until that test passes, run by the same function.

Sides are interleaved (raw, internal, external, then the reverse order), so
load from elsewhere falls on all of them alike.

The guest's boot under TCG varies by seconds from run to run on a shared
machine, far more than what lima adds, so each lima run also records its own
time: from the command's start until QEMU is exec'd (when QEMU writes its
pid file, first thing), plus from the host agent's SSH-ready event until the command exits.
B1 and B6 report, beside the plain ratio of medians, the floor's median plus
that own time's median: the same quantity, without the boot's noise twice.
Each side boots at least MIN_BOOTS times (outside ``--quick``): the same
guest's boots took 5.8-10.3 s within one run here, so a median of 7 per side
moved the plain ratio by ±0.15 between runs of the same code.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from . import _env, _timing

NAME = "b1"
START_TIMEOUT = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.split(b"\0")[:-1]]


def _instance_id(iso: Path) -> str:
    match = re.search(rb"instance-id: (iid-\d+)", iso.read_bytes())
    if match is None:
        raise RuntimeError(f"no instance-id in {iso}")
    return match[1].decode()


#: host agent messages that mark a milestone (the first requirement awaited is SSH; the second is awaited
#: once SSH answers)
_MILESTONES = {"Booting the VM": "booting",
               "Waiting for the essential requirement 1 of": "waiting_for_ssh",
               "Waiting for the essential requirement 2 of": "ssh_ready",
               "Waiting for the final requirement": "waiting_for_boot_done"}


def _new_instance_id(iso: Path, old: str) -> str:
    """Give the raw side's cidata a new instance id, as lima gives every start: the guest's cloud-init then
    does at each raw boot what it does at each lima boot (a new instance). The id keeps its length, so the
    ISO's structure is untouched; it is in meta-data and lima.env."""
    new = old
    while new == old:
        new = f"iid-{int(time.time())}"
        if new == old:
            time.sleep(0.2)
    if len(new) != len(old):
        raise RuntimeError(f"instance ids {old} and {new} differ in length")
    data = iso.read_bytes()
    iso.write_bytes(data.replace(old.encode(), new.encode()))
    return new


def _event_times(inst_dir: Path, since: float) -> dict[str, float]:
    """Seconds from *since* (epoch) to each host agent milestone, from ha.stdout.log."""
    import json

    out = {}
    with contextlib.suppress(OSError):
        for line in (inst_dir / "ha.stdout.log").read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError):
                data = json.loads(line)
                at = datetime.datetime.fromisoformat(data["time"]).timestamp() - since
                status = data.get("status", {})
                message = status.get("message", "")
                for prefix, key in _MILESTONES.items():
                    if message.startswith(prefix) and key not in out:
                        out[key] = round(at, 3)
                if status.get("running"):
                    out["running"] = round(at, 3)
    return out


#: Boots per side, at least (pooled runs of the same code: 14 boots per side gave the plain B1
#: ratio 1.08, while its two runs of 7 read 1.17 and 0.92).
MIN_BOOTS = 15
#: The cloud-init guest boots in 40-60 s under TCG: fewer boots, each a larger sample of the same noise.
MIN_CLOUD_BOOTS = 5


class Rig:
    def __init__(self, opts: _env.Options, home: Path, template: Path | None = None) -> None:
        self.opts = opts
        self.home = home
        self.template = template or _env.REPO / "templates" / "test-guest.yaml"
        self.inst_dir = home / NAME
        self.lima = _env.lima_command()
        self.envs = {"internal": _env.env(home), "external": _env.env(home, LIMA_EXTERNAL_DRIVERS="qemu")}
        self.raw_dir = home / "raw"
        self.qemu: list[str] = []
        self.iid = ""
        self.user = ""
        self.ha_rss: dict[str, list[float]] = {"internal": [], "external": []}
        self.driver_rss: list[float] = []
        self.milestones: dict[str, list[dict[str, float]]] = {"internal": [], "external": []}

    # -- lima --------------------------------------------------------------------------------

    def create(self) -> None:
        _env.run([*self.lima, "create", "--name", NAME, str(self.template)], env=self.envs["internal"],
                 timeout=START_TIMEOUT)

    def start(self, mode: str) -> float:
        since = time.time()
        started = time.perf_counter()
        proc = _env.run([*self.lima, "start", NAME, "--timeout", f"{START_TIMEOUT:g}s"], env=self.envs[mode],
                        timeout=START_TIMEOUT + 30)
        elapsed = time.perf_counter() - started
        if f"with {mode} VM driver" not in proc.stderr:
            raise RuntimeError(f"lima start did not use the {mode} driver: {proc.stderr.strip()}")
        marks = {**_event_times(self.inst_dir, since), "exit": round(elapsed, 3)}
        with contextlib.suppress(OSError):  # QEMU writes -pidfile first thing (a process's start time is
            # known to the second only: psutil counts from the boot time in /proc/stat)
            marks["qemu_exec"] = round((self.inst_dir / "qemu.pid").stat().st_mtime - since, 3)
        if "qemu_exec" in marks and "running" in marks:
            # lima's own time: until QEMU is exec'd, and from SSH-ready until the command exits
            marks["own"] = round(marks["qemu_exec"] + marks["exit"] - marks["running"], 3)
        self.milestones[mode].append(marks)
        ha = _pid(self.inst_dir / "ha.pid")
        if ha and (peak := _env.peak_rss_mib(ha)) is not None:
            self.ha_rss[mode].append(peak)
        drv = _pid(self.inst_dir / "qemu.drv.pid")
        if mode == "external" and drv and (peak := _env.peak_rss_mib(drv)) is not None:
            self.driver_rss.append(peak)
        return elapsed

    def stop(self) -> None:
        _env.run([*self.lima, "stop", NAME], env=self.envs["internal"], timeout=300)

    def lima_case(self, mode: str) -> _timing.Case:
        def case() -> float:
            try:
                return self.start(mode)
            finally:
                self.stop()
        return case

    # -- raw qemu ------------------------------------------------------------------------------

    def capture(self) -> None:
        """Start once with lima (the warm-up), read qemu's command line, the instance id and the guest user."""
        self.start("internal")
        try:
            pid = _pid(self.inst_dir / "qemu.pid")
            if pid is None:
                raise RuntimeError("no qemu.pid after lima start")
            self.qemu = _cmdline(pid)
            self.iid = _instance_id(self.inst_dir / "cidata.iso")
            self.user = re.search(r"^\s*User (\S+)", (self.inst_dir / "ssh.config").read_text(), re.M)[1]
        finally:
            self.stop()
        self.raw_dir.mkdir()
        for name in ("disk", "cidata.iso"):
            shutil.copyfile(self.inst_dir / name, self.raw_dir / name)
        for name in ("kernel", "initrd"):
            (self.raw_dir / name).symlink_to((self.inst_dir / name).resolve())

    def raw_argv(self, port: int) -> list[str]:
        inst = str(self.inst_dir)
        out = []
        for arg in self.qemu:
            arg = arg.replace(inst + "/", str(self.raw_dir) + "/")
            arg = re.sub(r"(hostfwd=tcp:[^:]*:)\d+(-:22)", rf"\g<1>{port}\g<2>", arg)
            out.append(arg)
        if out == self.qemu:
            raise RuntimeError("the qemu command line does not mention the instance directory")
        return out

    def raw_case(self) -> _timing.Case:
        from lima_core import sshutil
        try:
            from lima_core.hostagent import readiness
        except ImportError:  # a tree from before the host agent was a package (benchmarks.ab)
            from lima_core import hostagent as readiness

        def case() -> float:
            port = free_port()
            for f in self.raw_dir.iterdir():
                if f.name.endswith((".sock", ".pid")):
                    f.unlink()
            with _home(self.home):
                sshutil.write_config(self.raw_dir, NAME, self.user, port)
                ssh = sshutil.command(self.raw_dir, NAME, connect_timeout=readiness.SSH_CONNECT_TIMEOUT, tty=False)
            argv = self.raw_argv(port)
            self.iid = _new_instance_id(self.raw_dir / "cidata.iso", self.iid)
            with open(self.raw_dir / "qemu.log", "ab") as out:
                started = time.perf_counter()
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True)
            try:
                deadline = started + START_TIMEOUT
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"raw qemu exited with {proc.returncode}; see {self.raw_dir}/qemu.log")
                    if readiness.boot_done(ssh, "127.0.0.1", port) == self.iid:
                        return time.perf_counter() - started
                    if time.perf_counter() > deadline:
                        raise RuntimeError("raw qemu did not become SSH-ready")
                    time.sleep(readiness.SSH_POLL_INTERVAL)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
                proc.wait()
        return case

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            _env.run([*self.lima, "stop", "-f", NAME], env=self.envs["internal"], check=False, timeout=60)


@contextlib.contextmanager
def _home(path: Path) -> Any:
    from .b2_roundtrip import lima_home

    with lima_home(path):
        yield


def measure(opts: _env.Options, *, cloud: bool = False) -> dict[str, Any]:
    """Samples for the sides B1 and/or B6 need, or B1r's on the cloud-init guest (cached in opts.shared)."""
    key = "boot-cloud" if cloud else "boot"
    if key in opts.shared:
        return opts.shared[key]
    if shutil.which("qemu-system-x86_64") is None:
        raise _env.Skip("qemu-system-x86_64 is not installed")
    if cloud:
        template = _env.REPO / "templates" / "test-guest-cloud.yaml"
        if not (_env.REPO / ".cache" / "cloud-guest" / "current" / "manifest.json").is_file():
            raise _env.Skip("the cloud-init test guest is not built (run .venv/bin/python scripts/build-cloud-guest)")
        sides = ["raw", "internal"]
        runs, warmup = (1, 0) if opts.quick else (max(opts.runs, MIN_CLOUD_BOOTS), opts.warmup)
    else:
        template = None
        if _env.test_guest() is None:
            raise _env.Skip("the test guest is not built (run .venv/bin/python scripts/build-test-guest)")
        sides = []
        if "B1" in opts.only:
            sides += ["raw", "internal"]
        if "B6" in opts.only:
            sides += [s for s in ("internal", "external") if s not in sides]
        runs, warmup = (1, 0) if opts.quick else (max(opts.runs, MIN_BOOTS), opts.warmup)
    with _env.private_home(opts, "lb1") as home:
        rig = Rig(opts, home, template)
        try:
            rig.create()
            rig.capture()  # also the internal side's warm-up
            cases = {side: rig.raw_case() if side == "raw" else rig.lima_case(side) for side in sides}
            samples = _timing.interleaved(cases, runs, warmup)
        finally:
            rig.cleanup()
    result = {"samples": samples, "qemu_argv": rig.qemu, "ha_rss": rig.ha_rss, "driver_rss": rig.driver_rss,
              "milestones": rig.milestones, "runs": runs, "warmup": warmup}
    opts.shared[key] = result
    return result


def own_time(runs: list[dict[str, float]], measured: int) -> list[float]:
    """lima's own seconds in each of the last *measured* runs (the warm-ups came first): to QEMU's
    exec, plus from SSH-ready to the command's exit."""
    return [r["own"] for r in runs[-measured:] if "own" in r]


def milestone_medians(runs: list[dict[str, float]], measured: int) -> dict[str, float]:
    runs = runs[-measured:]
    keys = sorted({k for r in runs for k in r})
    return {k: round(_timing.median([r[k] for r in runs if k in r]), 3) for k in keys}
