"""lima-core's benchmarks: each figure against the floor it cannot beat, measured in the same run.

``python -m benchmarks [--quick] [--only B1,B4] [--json out.json]``; see docs/benchmarks.md.
"""

from __future__ import annotations

from . import (
    b1_start,
    b1r_start_cloud,
    b2_roundtrip,
    b3_spawn,
    b4_cli,
    b5_list,
    b6_external,
    b7_listen,
    b8_throughput,
    b9_connect,
    b10_resume,
    b11_mounts,
)

#: id -> module with ``run(opts, ctx) -> list[Row]``, in the order they run
BENCHMARKS = {"B1": b1_start, "B1r": b1r_start_cloud, "B2": b2_roundtrip, "B3": b3_spawn, "B4": b4_cli, "B5": b5_list,
              "B6": b6_external, "B7": b7_listen, "B8": b8_throughput, "B9": b9_connect, "B10": b10_resume,
              "B11": b11_mounts}
