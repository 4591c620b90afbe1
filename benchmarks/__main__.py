"""``python -m benchmarks [--quick] [--only B1,B4] [--json out.json]``: run, print a table, write JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import BENCHMARKS, _env, _timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="few repetitions and small sizes, to check the runner works (CI); figures are rough")
    parser.add_argument("--only", default="", help="comma-separated ids: " + ",".join(BENCHMARKS))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--runs", type=int, help="measured runs per case (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, help="warm-up runs per case (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary LIMA_HOMEs")
    parser.add_argument("--counts", help="B5's instance counts, e.g. 0,100 (default 0,10,100,500; quick 0,10,50)")
    args = parser.parse_args(argv)

    ids = {k.upper(): k for k in BENCHMARKS}
    only = [ids.get(x.strip().upper(), x.strip()) for x in args.only.split(",") if x.strip()] or list(BENCHMARKS)
    unknown = [x for x in only if x not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # As installed copies run: with bytecode (see _env._SCRUBBED). The drivers B2 and B3 spawn
    # inherit this process's environment.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    opts = _env.Options(quick=args.quick, runs=args.runs or (2 if args.quick else 5),
                        warmup=args.warmup if args.warmup is not None else 1, only=only, keep=args.keep,
                        counts=tuple(int(c) for c in args.counts.split(",")) if args.counts else ())
    started = time.monotonic()
    report = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "quick": opts.quick, "runs": opts.runs, "warmup": opts.warmup, "machine": _env.machine(),
              "load_before": _timing.load(), "benchmarks": {}, "results": []}
    rows: list[_timing.Row] = []
    failed = False
    for bid in only:
        module = BENCHMARKS[bid]
        print(module.__doc__.splitlines()[0], file=sys.stderr, flush=True)
        t0 = time.monotonic()
        entry = {"load_before": _timing.load()}
        try:
            got, status = module.run(opts), "ok"
        except _env.Skip as exc:
            got, status = [], f"skipped: {exc}"
        except Exception as exc:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            got, status, failed = [], f"error: {type(exc).__name__}: {exc}", True
        entry.update(status=status, seconds=round(time.monotonic() - t0, 1), load_after=_timing.load())
        report["benchmarks"][bid] = entry
        rows += got
        print(f"{bid}: {status} ({entry['seconds']} s, load {entry['load_after'][0]})", file=sys.stderr, flush=True)
    report["results"] = [r.to_json() for r in rows]
    report["load_after"] = _timing.load()
    report["seconds"] = round(time.monotonic() - started, 1)
    print(table(rows, report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if failed else 0


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def table(rows: list[_timing.Row], report: dict) -> str:
    """A GitHub-flavoured markdown table (docs/benchmarks.md holds the same)."""
    head = ("id", "measurement", "median", "floor", "floor median", "ratio", "target", "met", "CPU ratio")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        target = (f"≤ {r.target:g}" if r.target is not None else "") + (
            f"{' and ' if r.target is not None else ''}≤ {r.target_abs:g} {r.unit}" if r.target_abs is not None else "")
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        cpu = f"{r.extra['cpu_ratio']:.2f}" if r.extra.get("cpu_ratio") is not None else "-"
        lines.append("| " + " | ".join((r.id, r.what, _fmt(r.value, r.unit), r.floor or "-",
                                         _fmt(r.floor_value, r.unit), ratio, target or "-", met, cpu)) + " |")
    m = report["machine"]
    lines.append("")
    lines.append(f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; load {report['load_before']} -> "
                 f"{report.get('load_after')}; {'quick mode; ' if report['quick'] else ''}"
                 f"median of {report['runs']} runs after {report['warmup']} warm-up; {report['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
