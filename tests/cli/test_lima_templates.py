"""Templates shaped like Lima's own (tests/instance/lima-templates) validate and create; what lima-core does
not apply is named, never silently dropped."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

TEMPLATES = Path(__file__).resolve().parents[1] / "instance" / "lima-templates"
NAMES = sorted(p.stem for p in TEMPLATES.glob("*.yaml") if not p.name.startswith("_"))
#: what `lima template validate` names for each (lima-core warns: it does not apply these yet)
NAMED = {"default-like": set(), "docker-like": set(), "k8s-like": set(), "alpine-like": set(), "env-like": set()}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    out = tmp_path / "templates"
    shutil.copytree(TEMPLATES, out)
    images = tmp_path / "images"
    images.mkdir()
    for name in ("cloud-amd64.img", "cloud-arm64.img", "alpine.iso"):
        (images / name).write_bytes(b"\0" * 65536)
    for path in out.glob("*.yaml"):
        path.write_text(path.read_text().replace("IMAGE_DIR", str(images)))
    return out


def test_every_template_is_named_here() -> None:
    assert set(NAMES) == set(NAMED)


@pytest.mark.parametrize("name", NAMES)
def test_lima_shaped_templates_validate(name: str, templates: Path, lima) -> None:
    r = lima("template", "validate", str(templates / f"{name}.yaml"), ok=True)
    assert f"{name}.yaml: valid" in r.stderr
    named = {m[1] for m in re.finditer(r": (\S+) is not supported by lima-core", r.stderr)}
    assert named == NAMED[name], r.stderr


@pytest.mark.parametrize("name", NAMES)
def test_lima_shaped_templates_create(name: str, templates: Path, lima, driver_mode: str, lima_home: Path) -> None:
    lima("create", "--name", name, "--set", '.vmType = "fake"', str(templates / f"{name}.yaml"), ok=True)
    saved = yaml.safe_load((lima_home / name / "lima.yaml").read_text())
    source = yaml.safe_load((templates / f"{name}.yaml").read_text())
    for key in source:
        if key != "base":
            assert key in saved, key  # the instance keeps what the template said
    if name == "docker-like":
        assert saved["param"] == {"containerdSnapshotter": True}
    lima("delete", name, ok=True)
