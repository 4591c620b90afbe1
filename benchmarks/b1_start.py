"""B1: ``lima start`` to SSH-ready against raw qemu-system-x86_64 with the driver's own arguments.

See ``_boot`` for how the floor's command line is obtained and what
SSH-ready means on both sides. Also reported: the host agent's peak RSS.
"""

from __future__ import annotations

from . import _boot, _env, _timing

ID = "B1"
TARGET = 1.10


def run(opts: _env.Options) -> list[_timing.Row]:
    boot = _boot.measure(opts)
    s = boot["samples"]
    extra = {"runs": boot["runs"], "milestones_s": _boot.milestone_medians(boot["milestones"]["internal"]),
             "qemu_argv": boot["qemu_argv"]}
    return [_timing.row(ID, "lima start → SSH-ready (test guest, internal qemu)", "s", s["internal"],
                        "raw qemu, same arguments → SSH-ready", s["raw"], target=TARGET, extra=extra),
            _timing.Row(id="RSS", what="host agent peak RSS (lima hostagent, qemu running)", unit="MiB",
                        value=_timing.median(boot["ha_rss"]["internal"]), samples=boot["ha_rss"]["internal"],
                        load=_timing.load())]
