"""Every lima.yaml field has a row in lima_core.fields, and docs/lima-yaml.md is that table."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from lima_core import fields
from lima_core._jsonmodel import JSONModel
from lima_core.limatype import LimaYAML

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: nested models whose every field has its own row (the others are covered by their parent's row)
PER_FIELD = ("ssh", "user", "hostResolver")


def _keys(cls: type) -> list[str]:
    return [f.metadata["key"] for f in dataclasses.fields(cls) if "key" in f.metadata]


def _model_of(cls: type, key: str) -> type:
    hints = typing.get_type_hints(cls)
    attr = next(f.name for f in dataclasses.fields(cls) if f.metadata.get("key") == key)
    hint = hints[attr]
    return next(a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, JSONModel))


def test_every_field_of_the_model_has_a_row() -> None:
    paths = set(fields.BY_PATH)
    for key in _keys(LimaYAML):
        if key in PER_FIELD:
            for sub in _keys(_model_of(LimaYAML, key)):
                assert f"{key}.{sub}" in paths, f"{key}.{sub} has no row in lima_core.fields.FIELDS"
        else:
            assert key in paths, f"{key} has no row in lima_core.fields.FIELDS"


def test_every_row_names_a_field_of_the_model() -> None:
    top = set(_keys(LimaYAML))
    for path in fields.BY_PATH:
        head = path.split(".")[0].removesuffix("[]")
        assert head in top, path


@pytest.mark.parametrize("row", fields.FIELDS, ids=lambda f: f.path)
def test_what_is_not_applied_can_be_found(row: fields.Field) -> None:
    assert (row.unapplied is not None) == (row.status in (fields.PARTLY, fields.REFUSED, fields.WARNED)), row.path


def test_docs_table_is_current() -> None:
    assert (DOCS / "lima-yaml.md").read_text() == fields.render(), \
        "docs/lima-yaml.md is stale: python -c 'from lima_core import fields; print(fields.render(), end=\"\")' > docs/lima-yaml.md"


def _cfg(**data: object) -> LimaYAML:
    from lima_core import limayaml

    base = {"images": [{"location": "/x.img"}], **data}
    return limayaml.fill_defaults(LimaYAML.from_json(base))


def test_check_names_what_is_refused_and_what_is_warned() -> None:
    cfg = _cfg(additionalDisks=["data"], portForwards=[{"guestPort": 8080}], containerd={"user": False},
               provision=[{"mode": "yq", "path": "/etc/x.yaml", "expression": ".a = 1"}], mountInotify=True)
    found = {f.path: f for f in fields.check(cfg, "qemu")}
    # additionalDisks: qemu attaches them; portForwards: applied; mountInotify: applied on Linux hosts
    assert set(found) == {"provision"} and found["provision"].error


def test_a_plain_config_has_nothing_to_report() -> None:
    assert fields.check(_cfg(containerd={"user": False, "system": False})) == []


def test_enforce_raises_naming_every_refused_field() -> None:
    from lima_core.errors import ConfigError

    cfg = _cfg(provision=[{"mode": "yq", "path": "/etc/x.yaml", "expression": ".a = 1"}],
               mounts=[{"location": "/tmp", "sshfs": {"sftpDriver": "builtin"}}])
    with pytest.raises(ConfigError, match=r"mounts\[\].sshfs is not supported.*provision is not supported"):
        fields.enforce(cfg, "qemu", "t.yaml")
