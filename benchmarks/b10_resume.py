"""B10: ``lima resume`` to SSH-ready against ``lima start`` (a cold boot) of the same instance, same run.

One instance of the test guest, with a read-only 9p share as Lima's default template has one
(the suspend unmounts it in the guest, the resume mounts it again). Each round boots it cold
(``lima start``), suspends it (``lima suspend``), resumes it (``lima resume``) and stops it, so
cold starts and resumes alternate and load from elsewhere falls on both. Both commands are
timed from their spawn until they exit after READY: the host agent's requirements have held
(SSH answers, this boot's boot-done marker), and for the resume the clock is set and the share
mounted again. Also reported: how long ``lima suspend`` takes (guest sync and unmount, the
save, the host agent's exit) and the size of the saved state.
"""

from __future__ import annotations

import json
import shutil
import time

from . import _env, _timing

ID = "B10"
TARGET = 0.25
NAME = "b10"
TIMEOUT = 300.0


def run(opts: _env.Options) -> list[_timing.Row]:
    if _env.test_guest() is None:
        raise _env.Skip("the test guest is not built (run .venv/bin/python scripts/build-test-guest)")
    if shutil.which("qemu-system-x86_64") is None:
        raise _env.Skip("qemu-system-x86_64 is not installed")
    runs, warmup = (1, 0) if opts.quick else (opts.runs, opts.warmup)
    lima = _env.lima_command()
    cold: list[float] = []
    resumed: list[float] = []
    suspend: list[float] = []
    sizes: list[float] = []
    with _env.private_home(opts, "lb10") as home:
        env = _env.env(home)
        share = home / "share"
        share.mkdir()
        mounts = json.dumps([{"location": str(share), "mountPoint": "/mnt/share"}])

        def timed(*args: str) -> float:
            started = time.perf_counter()
            _env.run([*lima, *args], env=env, timeout=TIMEOUT)
            return time.perf_counter() - started

        _env.run([*lima, "create", "--name", NAME, "--set", f".mounts = {mounts}",
                  str(_env.REPO / "templates" / "test-guest.yaml")], env=env, timeout=TIMEOUT)
        try:
            for i in range(warmup + runs):
                boot = timed("start", NAME, "--timeout", f"{TIMEOUT:g}s")
                saving = timed("suspend", NAME)
                record = json.loads((home / NAME / "suspended.json").read_text())
                back = timed("resume", NAME, "--timeout", f"{TIMEOUT:g}s")
                _env.run([*lima, "stop", NAME], env=env, timeout=TIMEOUT)
                if i >= warmup:
                    cold.append(boot)
                    resumed.append(back)
                    suspend.append(saving)
                    sizes.append(record["stateBytes"] / (1 << 20))
        finally:
            _env.run([*lima, "stop", "-f", NAME], env=env, check=False, timeout=60)
    return [_timing.row(ID, "lima resume → SSH-ready (test guest with a 9p share, internal qemu)", "s", resumed,
                        "lima start (cold boot) of the same instance → SSH-ready", cold, target=TARGET,
                        extra={"runs": runs}),
            _timing.row(ID, "lima suspend (guest sync and unmount, QEMU's save, host agent exit)", "s", suspend),
            _timing.Row(id=ID, what="saved state (512 MiB guest)", unit="MiB", value=_timing.median(sizes),
                        samples=sizes, load=_timing.load())]
