"""lima-core's benchmarks: each figure against the floor it cannot beat, measured in the same run.

``python -m benchmarks [--quick] [--only B1,B4] [--json out.json]``; see docs/benchmarks.md.
"""

from __future__ import annotations

from . import b1_start, b2_roundtrip, b3_spawn, b4_cli, b5_list, b6_external, b11_mounts

#: id -> module with ``run(opts, ctx) -> list[Row]``, in the order they run
BENCHMARKS = {"B1": b1_start, "B2": b2_roundtrip, "B3": b3_spawn, "B4": b4_cli, "B5": b5_list, "B6": b6_external,
              "B11": b11_mounts}
