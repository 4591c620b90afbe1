"""B4: ``lima --version``, ``lima list`` (no instances) and every command's ``--help`` against ``python -c "import typer"``.

Each run is a fresh process, timed from spawn to exit. Besides the time, one
extra run under ``python -X importtime`` lists what each command imported, to
show that no grpc and no driver is loaded on these paths. The ``--help`` row is
the slowest command's; every command's median is in its extra.
"""

from __future__ import annotations

import subprocess

from . import _env, _timing

ID = "B4"
TARGET = 1.5
#: imports that must not happen on these paths, and a few worth knowing about
FORBIDDEN = ("grpc", "google.protobuf", "lima_driver_", "lima_core.external.client", "lima_core.protocol")
NOTABLE = ("pluggy", "pydantic", "yaml", "psutil", "rich", "importlib.metadata")


def imported(argv: list[str], env: dict[str, str]) -> list[str]:
    """Module names the command imported (``-X importtime``)."""
    script = argv[0] if len(argv) == 1 or argv[1] != "-m" else None
    cmd = [_env.python(), "-X", "importtime", *(argv if script is None else [script, *argv[1:]])]
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    names = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    return names


def _import_report(names: list[str]) -> dict[str, object]:
    bad = sorted({n for n in names if n.startswith(FORBIDDEN)})
    notable = sorted({p for p in NOTABLE if any(n == p or n.startswith(p + ".") for n in names)})
    return {"modules": len(names), "forbidden_imports": bad, "notable_imports": notable}


def run(opts: _env.Options) -> list[_timing.Row]:
    lima = _env.lima_command()
    with _env.private_home(opts, "lb4") as home:
        env = _env.env(home)
        floor = [_env.python(), "-c", "import typer"]
        cases = {"floor": _env.spawn_case(floor, env), "version": _env.spawn_case([*lima, "--version"], env),
                 "list": _env.spawn_case([*lima, "list"], env)}
        cpu: dict[str, list[float]] = {}
        samples = _timing.interleaved(cases, opts.runs, opts.warmup, cpu)
        rows = []
        for key, what in (("version", "lima --version"), ("list", "lima list (0 instances)")):
            argv = [*lima, "--version"] if key == "version" else [*lima, "list"]
            report = _import_report(imported(argv, env))
            report["met"] = not report["forbidden_imports"]
            report.update(_timing.cpu_extra(cpu, key, "floor"))
            rows.append(_timing.row(ID, what, "ms", samples[key], 'python -c "import typer"', samples["floor"],
                                    factor=1000, target=TARGET, extra=report))
        help_row = _help_row(opts, lima, env)
        if help_row is not None:
            rows.append(help_row)
    return rows


def _help_row(opts: _env.Options, lima: list[str], env: dict[str, str]) -> _timing.Row | None:
    """Every command's ``--help``, interleaved with the floor; the row is the slowest command's (None for a
    tree from before lima-core listed its commands, measured by ``benchmarks.ab --this-runner``)."""
    from lima_core.cli import app

    try:
        from lima_core.cli._reference import command_paths
    except ImportError:
        return None

    paths = command_paths(app)
    cases = {"floor": _env.spawn_case([_env.python(), "-c", "import typer"], env)}
    for words in paths:
        cases[" ".join(words)] = _env.spawn_case([*lima, *words, "--help"], env)
    cpu: dict[str, list[float]] = {}
    samples = _timing.interleaved(cases, max(1, opts.runs // 2) if opts.quick else opts.runs, opts.warmup, cpu)
    medians = {k: _timing.median(v) for k, v in samples.items() if k != "floor"}
    slowest = max(medians, key=medians.__getitem__)
    forbidden = sorted({n for words in paths for n in imported([*lima, *words, "--help"], env)
                        if n.startswith(FORBIDDEN)})
    cpu_medians = {k: _timing.median(v) for k, v in cpu.items() if k != "floor"}
    most_cpu = max(cpu_medians, key=cpu_medians.__getitem__)
    report: dict[str, object] = {"commands": len(paths), "slowest": slowest, "forbidden_imports": forbidden,
                                 "met": not forbidden,
                                 "medians_ms": {k: round(v * 1000, 1) for k, v in sorted(medians.items())},
                                 "cpu_medians_ms": {k: round(v * 1000, 1) for k, v in sorted(cpu_medians.items())},
                                 "most_cpu": most_cpu,
                                 "most_cpu_ratio": round(cpu_medians[most_cpu] / _timing.median(cpu["floor"]), 3)}
    report.update(_timing.cpu_extra(cpu, slowest, "floor"))
    return _timing.row(ID, f"lima COMMAND --help, the slowest of {len(paths)} ({slowest})", "ms", samples[slowest],
                       'python -c "import typer"', samples["floor"], factor=1000, target=TARGET, extra=report)
