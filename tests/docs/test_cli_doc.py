"""docs/cli.md is generated from the typer app, and every limactl command and flag is in lima or explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from lima_core.cli import _reference as ref
from lima_core.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_md_is_generated_from_the_app() -> None:
    assert DOC.read_text() == ref.render(app), (
        "docs/cli.md is stale: .venv/bin/python -c 'from lima_core.cli import app; from lima_core.cli._reference "
        "import render; print(render(app), end=\"\")' > docs/cli.md")


def test_a_missing_limactl_flag_without_a_reason_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ref.LIMACTL, "stop", ((), ("-f/--force", "--no-such-flag")))
    with pytest.raises(ValueError, match="stop --no-such-flag"):
        ref.render(app)
    monkeypatch.setitem(ref.LIMACTL, "frobnicate", ((), ()))
    with pytest.raises(ValueError, match="frobnicate"):
        ref.render(app)


def test_every_reason_is_for_something_lima_lacks() -> None:
    """A reason for a command or flag lima has would be a stale note."""
    text = ref.render(app)
    for key in ref.LEFT_OUT:
        name, _, flag = key.partition(" --")
        if flag:
            assert f"| | `--{flag}` | no |" in text, key
        else:
            assert f"| `{name}` | | no |" in text, key


def test_every_command_of_lima_is_limactls_or_explained() -> None:
    groups = {name.split(" ")[0] for name in ref.LIMACTL if " " in name}
    lima_only = [" ".join(path) for path in ref.command_paths(app)
                 if " ".join(path) not in ref.LIMACTL and " ".join(path) not in groups]
    unexplained = [c for c in lima_only if c not in ref.LIMA_ONLY and c.split(" ")[0] not in ref.LIMA_ONLY]
    assert unexplained == [], f"lima commands with no row in _reference.LIMA_ONLY: {unexplained}"
