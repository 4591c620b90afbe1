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
    extra = {"runs": boot["runs"], "milestones_s": _boot.milestone_medians(boot["milestones"]["internal"], boot["runs"]),
             "qemu_argv": boot["qemu_argv"]}
    own = _boot.own_time(boot["milestones"]["internal"], boot["runs"])
    floor = _timing.median(s["raw"])
    modelled = _timing.Row(id=ID, what="lima start → SSH-ready, as raw QEMU's median + lima's own time", unit="s",
                           value=floor + _timing.median(own), floor="raw qemu, same arguments → SSH-ready",
                           floor_value=floor, target=TARGET, samples=own, floor_samples=s["raw"],
                           extra={"own_time_s": round(_timing.median(own), 3),
                                  "what": "own time: lima start until QEMU's exec, plus SSH-ready event until exit"},
                           load=_timing.load())
    return [_timing.row(ID, "lima start → SSH-ready (test guest, internal qemu)", "s", s["internal"],
                        "raw qemu, same arguments → SSH-ready", s["raw"], target=TARGET, extra=extra), modelled,
            _timing.Row(id="RSS", what="host agent peak RSS (lima hostagent, qemu running)", unit="MiB",
                        value=_timing.median(boot["ha_rss"]["internal"]), samples=boot["ha_rss"]["internal"],
                        load=_timing.load())]
