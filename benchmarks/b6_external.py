"""B6: ``lima start`` with the qemu driver external (``LIMA_EXTERNAL_DRIVERS=qemu``) against internal.

The external side runs ``lima-driver-qemu`` (the distribution's console
script) for the CLI's checks and for the host agent. Also reported: that
driver process's peak RSS.
"""

from __future__ import annotations

from . import _boot, _env, _timing

ID = "B6"
TARGET = 1.03


def run(opts: _env.Options) -> list[_timing.Row]:
    boot = _boot.measure(opts)
    s = boot["samples"]
    extra = {"runs": boot["runs"], "milestones_s": _boot.milestone_medians(boot["milestones"]["external"], boot["runs"])}
    own_ext = _boot.own_time(boot["milestones"]["external"], boot["runs"])
    own_int = _boot.own_time(boot["milestones"]["internal"], boot["runs"])
    floor = _timing.median(s["internal"])
    extra_own = _timing.median(own_ext) - _timing.median(own_int)
    modelled = _timing.Row(id=ID, what="lima start, qemu external, as internal's median + the own-time difference",
                           unit="s", value=floor + extra_own, floor="lima start, qemu internal", floor_value=floor,
                           target=TARGET, samples=own_ext, floor_samples=own_int,
                           extra={"own_time_external_s": round(_timing.median(own_ext), 3),
                                  "own_time_internal_s": round(_timing.median(own_int), 3)},
                           load=_timing.load())
    return [_timing.row(ID, "lima start → SSH-ready, qemu external", "s", s["external"],
                        "lima start, qemu internal", s["internal"], target=TARGET, extra=extra), modelled,
            _timing.Row(id="RSS", what="external driver peak RSS (lima-driver-qemu, VM running)", unit="MiB",
                        value=_timing.median(boot["driver_rss"]), samples=boot["driver_rss"], load=_timing.load()),
            _timing.Row(id="RSS", what="host agent peak RSS (lima hostagent, qemu external)", unit="MiB",
                        value=_timing.median(boot["ha_rss"]["external"]), samples=boot["ha_rss"]["external"],
                        load=_timing.load())]
