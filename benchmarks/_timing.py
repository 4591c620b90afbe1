"""Timing: warm-up, interleaved runs, medians, ratios to a floor, and the result rows.

Every benchmark compares a measurement with a floor measured in the same run,
so a noisy machine moves both. Cases are interleaved (A B A B ...) rather than
run in blocks, so a burst of load from elsewhere lands on both sides.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

#: A case runs once and returns the seconds it measured, or None to be timed whole.
Case = Callable[[], "float | None"]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(case: Case) -> tuple[float, float]:
    """(seconds measured, CPU seconds used meanwhile by this process and the children it waited for)."""
    cpu = cpu_seconds()
    started = time.perf_counter()
    measured = case()
    wall = measured if measured is not None else time.perf_counter() - started
    return wall, cpu_seconds() - cpu


def interleaved(cases: dict[Any, Case], runs: int, warmup: int = 1,
                cpu: dict[Any, list[float]] | None = None) -> dict[Any, list[float]]:
    """Run every case *warmup* times (discarded), then *runs* rounds of each case in turn.

    The order inside a round alternates, so neither side always runs right
    after the other. CPU seconds per run go into *cpu* when given (meaningful
    for cases that run a child process to completion: load from elsewhere
    stretches wall time, hardly CPU time).
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            timed(cases[name])
    samples: dict[Any, list[float]] = {name: [] for name in names}
    for i in range(runs):
        for name in names if i % 2 == 0 else reversed(names):
            wall, used = timed(cases[name])
            samples[name].append(wall)
            if cpu is not None:
                cpu.setdefault(name, []).append(used)
    return samples


def cpu_extra(cpu: dict[Any, list[float]], key: Any, floor_key: Any | None = None) -> dict[str, Any]:
    """The CPU-time median (ms) of *key*, and its ratio to *floor_key*'s, for a row's extra."""
    out: dict[str, Any] = {"cpu_ms": round(median(cpu[key]) * 1000, 1)}
    if floor_key is not None and median(cpu[floor_key]) > 0:
        out["floor_cpu_ms"] = round(median(cpu[floor_key]) * 1000, 1)
        out["cpu_ratio"] = round(median(cpu[key]) / median(cpu[floor_key]), 3)
    return out


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


@dataclasses.dataclass
class Row:
    """One line of the table (and one object in the JSON)."""

    id: str
    what: str
    unit: str
    value: float
    floor: str = ""
    floor_value: float | None = None
    #: "<= 1.10" style: the ratio must not exceed this (None: no target, reported only)
    target: float | None = None
    #: an absolute target in *unit* instead of a ratio (B5: 500 instances in <= 2 s)
    target_abs: float | None = None
    samples: list[float] = dataclasses.field(default_factory=list)
    floor_samples: list[float] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    load: list[float] = dataclasses.field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.floor_value is None or not self.floor_value:
            return None
        return self.value / self.floor_value

    @property
    def met(self) -> bool | None:
        checks = []
        if self.target is not None and self.ratio is not None:
            checks.append(self.ratio <= self.target)
        if self.target_abs is not None:
            checks.append(self.value <= self.target_abs)
        if "met" in self.extra:
            checks.append(bool(self.extra["met"]))
        return all(checks) if checks else None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "what": self.what, "unit": self.unit, "value": _round(self.value),
                "floor": self.floor or None, "floor_value": _round(self.floor_value), "ratio": _round(self.ratio, 3),
                "target": self.target, "target_abs": self.target_abs, "met": self.met,
                "samples": [_round(s) for s in self.samples], "floor_samples": [_round(s) for s in self.floor_samples],
                "load": self.load, "extra": self.extra}


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None:
        return None
    return round(value, digits) if abs(value) >= 1 else float(f"{value:.{digits}g}")


def scaled(samples: list[float], factor: float) -> list[float]:
    return [s * factor for s in samples]


def row(id: str, what: str, unit: str, samples: list[float], floor: str = "", floor_samples: list[float] | None = None,
        factor: float = 1.0, **kwargs: Any) -> Row:
    """A row from raw samples in seconds, shown in *unit* (seconds times *factor*)."""
    samples = scaled(samples, factor)
    floor_s = scaled(floor_samples, factor) if floor_samples else []
    return Row(id=id, what=what, unit=unit, value=median(samples), floor=floor,
               floor_value=median(floor_s) if floor_s else None, samples=samples, floor_samples=floor_s,
               load=load(), **kwargs)
