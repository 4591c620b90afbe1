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
    extra = {"runs": boot["runs"], "milestones_s": _boot.milestone_medians(boot["milestones"]["external"])}
    return [_timing.row(ID, "lima start → SSH-ready, qemu external", "s", s["external"],
                        "lima start, qemu internal", s["internal"], target=TARGET, extra=extra),
            _timing.Row(id="RSS", what="external driver peak RSS (lima-driver-qemu, VM running)", unit="MiB",
                        value=_timing.median(boot["driver_rss"]), samples=boot["driver_rss"], load=_timing.load()),
            _timing.Row(id="RSS", what="host agent peak RSS (lima hostagent, qemu external)", unit="MiB",
                        value=_timing.median(boot["ha_rss"]["external"]), samples=boot["ha_rss"]["external"],
                        load=_timing.load())]
