"""Before/after: ``python -m benchmarks.ab BEFORE AFTER [--only B4] [--rounds 3] [--this-runner] [runner options]``.

BEFORE and AFTER are git revisions, or directories holding a checkout
(``.`` is this working tree). A revision is exported with ``git archive`` to a temporary directory and put first on
PYTHONPATH (with its ``plugins/*``), ahead of the installed lima-core and
drivers, so the same venv runs either version's code. The runner is run
alternately for each, *rounds* times, and each row's median is the median of
the rounds' medians. Each tree is measured by its own ``benchmarks`` (this
checkout's when it has none); ``--this-runner`` measures both with this
checkout's, so a floor that changed between them is the same on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ._env import REPO


def export(rev: str, dest: Path) -> Path:
    if Path(rev).is_dir():
        return Path(rev).resolve()
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def pythonpath(tree: Path, runner: Path | None = None) -> str:
    """The tree and its plugins, then this checkout (for ``benchmarks`` when the tree has none); *runner*, a
    directory holding only ``benchmarks``, goes first."""
    parts = [str(tree)] + [str(p) for p in sorted((tree / "plugins").glob("*")) if p.is_dir()] + [str(REPO)]
    return os.pathsep.join(([str(runner)] if runner is not None else []) + parts)


def this_runner(work: Path) -> Path:
    """A directory whose only entry is this checkout's ``benchmarks`` (a link: the runner finds the test
    guests and templates beside its real path)."""
    runner = work / "runner"
    runner.mkdir()
    (runner / "benchmarks").symlink_to(REPO / "benchmarks")
    return runner


def run_once(tree: Path, args: list[str], out: Path, runner: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath(tree, runner)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # -P: the working directory does not go first on sys.path, so the runner itself imports the
    # tree's lima-core (B2 and B3 call it in-process; B5 asks its drivers what they implement).
    proc = subprocess.run([sys.executable, "-P", "-m", "benchmarks", *args, "--json", str(out)], cwd=REPO,
                          env=env, stdout=subprocess.DEVNULL)
    if not out.exists():
        raise SystemExit(f"benchmarks.ab: the runner wrote no results for {tree} (exit status {proc.returncode})")
    if proc.returncode != 0:  # a benchmark failed: its rows are missing, the others stand
        print(f"benchmarks.ab: a benchmark failed for {tree} (its error is above)", file=sys.stderr, flush=True)
    return json.loads(out.read_text())


def paired(before: list[dict], after: list[dict]) -> list[tuple[dict, dict[str, int | None]]]:
    """The rows of both sides, each with its index on either side (None: that side has no such row). Rows
    pair by id and description, else by id in order (a description may name a measured value)."""
    out: list[tuple[dict, dict[str, int | None]]] = []
    taken: set[int] = set()
    described = {(b["id"], b["what"]) for b in before}
    for i, row in enumerate(before):
        j = next((j for j, r in enumerate(after) if j not in taken and (r["id"], r["what"]) == (row["id"], row["what"])),
                 None)
        if j is None:
            j = next((j for j, r in enumerate(after) if j not in taken and r["id"] == row["id"]
                      and (r["id"], r["what"]) not in described), None)
        if j is not None:
            taken.add(j)
        out.append((row, {"before": i, "after": j}))
    out += [(row, {"before": None, "after": j}) for j, row in enumerate(after) if j not in taken]
    return out


def _value(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g} {unit}"


def _cpu(ms: float | None, ratio: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" + (f" ({ratio:.2f})" if ratio is not None else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--this-runner", action="store_true",
                        help="measure both trees with this checkout's benchmarks (the same cases and floors on both "
                             "sides) instead of each tree's own")
    args, rest = parser.parse_known_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lab-", dir="/tmp"))
    try:
        trees = {"before": export(args.before, work / "before"), "after": export(args.after, work / "after")}
        runner = this_runner(work) if args.this_runner else None
        results: dict[str, list[dict]] = {"before": [], "after": []}
        for i in range(args.rounds):
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                print(f"round {i + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                results[side].append(run_once(trees[side], rest, work / f"{side}-{i}.json", runner))
        print(f"| measurement | before ({args.before}) | after ({args.after}) | after/before | "
              "before ratio | after ratio | CPU before | CPU after |")
        print("|---|---|---|---|---|---|---|---|")
        for row, index in paired(results["before"][0]["results"], results["after"][0]["results"]):
            def med(side: str, key: str, index: dict[str, int | None] = index) -> float | None:
                j = index[side]
                if j is None:
                    return None
                values = [r["results"][j].get(key, r["results"][j]["extra"].get(key)) for r in results[side]]
                values = [v for v in values if v is not None]
                return statistics.median(values) if values else None
            b, a = med("before", "value"), med("after", "value")
            br, ar = med("before", "ratio"), med("after", "ratio")
            change = f"{a / b:.2f}" if a is not None and b else "-"
            print(f"| {row['id']} {row['what']} | {_value(b, row['unit'])} | {_value(a, row['unit'])} | {change} | "
                  f"{'-' if br is None else f'{br:.2f}'} | {'-' if ar is None else f'{ar:.2f}'} | "
                  f"{_cpu(med('before', 'cpu_ms'), med('before', 'cpu_ratio'))} | "
                  f"{_cpu(med('after', 'cpu_ms'), med('after', 'cpu_ratio'))} |")
        load = [r["load_before"][0] for side in results.values() for r in side]
        print(f"\nload (1 min) during the rounds: {min(load)}-{max(load)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
