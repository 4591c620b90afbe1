"""Templates and lima.yaml: locators, base: embedding, layering, defaults, --set."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from lima_core import limayaml, templates
from lima_core.errors import ConfigError, TemplateError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_merging_rules(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", """
cpus: 2
memory: 2GiB
images: [{location: base.img}]
mounts: [{location: /a, writable: false}, {location: /b}]
provision: [{script: base}]
env: {A: base, B: base}
""")
    top = write(tmp_path / "top.yaml", """
base: base.yaml
cpus: 4
images: [{location: top.img}]
mounts: [{location: /a, writable: true}]
provision: [{script: top}]
env: {B: top}
""")
    data = templates.embed(templates.read(str(top)))
    assert "base" not in data
    assert data["cpus"] == 4 and data["memory"] == "2GiB"
    assert [i["location"] for i in data["images"]] == [str(tmp_path / "top.img"), str(tmp_path / "base.img")]
    assert data["mounts"] == [{"location": "/a", "writable": True}, {"location": "/b"}]
    assert [p["script"] for p in data["provision"]] == ["base", "top"]
    assert data["env"] == {"A": "base", "B": "top"}


def test_base_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(TemplateError, match="includes itself|nest more than"):
        templates.embed(templates.read(str(tmp_path / "a.yaml")))


def test_relative_locations_follow_the_template(tmp_path: Path) -> None:
    t = write(tmp_path / "sub" / "t.yaml", "images:\n- location: ../img.qcow2\n  kernel: {location: k}\n"
                                           "- location: https://example.com/x.img\n- location: /abs.img\n")
    data = templates.embed(templates.read(str(t)))
    assert data["images"][0]["location"] == str(tmp_path / "img.qcow2")
    assert data["images"][0]["kernel"]["location"] == str(tmp_path / "sub" / "k")
    assert data["images"][1]["location"] == "https://example.com/x.img"
    assert data["images"][2]["location"] == "/abs.img"


def test_template_name_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIMA_TEMPLATES_PATH", str(tmp_path))
    write(tmp_path / "ubuntu-24.04.yaml", "cpus: 1\n")
    write(tmp_path / "x.yml", "cpus: 2\n")
    assert templates.read("template:ubuntu-24.04").name == "ubuntu-24.04"  # ".04" is not an extension
    assert templates.read("template:x.yml").text == "cpus: 2\n"
    for bad in ("template:../x", "template:/etc/passwd", "template:a/../../b"):
        with pytest.raises(TemplateError, match="cannot contain"):
            templates.read(bad)
    with pytest.raises(TemplateError, match="not found"):
        templates.read("template:missing")


def test_http_template(tmp_path: Path) -> None:
    write(tmp_path / "remote.yaml", "images:\n- location: disk.img\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.yaml"
        tmpl = templates.read(url)
        assert tmpl.name == "remote"
        data = templates.embed(tmpl)
        assert data["images"][0]["location"] == f"http://127.0.0.1:{server.server_address[1]}/disk.img"
        with pytest.raises(TemplateError, match="cannot download"):
            templates.read(url.replace("remote", "nothere"))
    finally:
        server.shutdown()


def test_layering_with_default_and_override(lima_home: Path) -> None:
    write(lima_home / "_config" / "default.yaml", "cpus: 3\nmemory: 3GiB\nmounts: [{location: /d}]\nenv: {D: d, X: d}\n")
    write(lima_home / "_config" / "override.yaml", "memory: 5GiB\nmounts: [{location: /o}]\nenv: {X: o}\n")
    cfg = limayaml.from_data({"images": [{"location": "/i"}], "memory": "1GiB", "mounts": [{"location": "/y"}],
                              "env": {"Y": "y"}}, "t")
    assert cfg.cpus == 3 and cfg.memory == "5GiB"
    assert [m.location for m in cfg.mounts or []] == ["/d", "/y", "/o"]
    assert cfg.env == {"D": "d", "X": "o", "Y": "y"}


def test_defaults_are_filled() -> None:
    cfg = limayaml.from_data({"images": [{"location": "/i", "kernel": {"location": "/k"}}]}, "t")
    assert cfg.vm_type in ("qemu", "vz") and cfg.os == "Linux" and cfg.arch
    assert cfg.images and cfg.images[0].arch == cfg.arch and cfg.images[0].kernel.arch == cfg.arch
    assert cfg.cpus and cfg.cpus >= 1 and cfg.disk == "100GiB" and cfg.memory
    assert cfg.ssh and cfg.ssh.local_port == 0 and cfg.video and cfg.video.display == "none"
    assert cfg.user and cfg.user.home and cfg.user.home.endswith(".guest")


@pytest.mark.parametrize(("data", "message"), [
    ({}, "images: at least one image"),
    ({"images": [{"location": "/i"}], "arch": "mips"}, "arch: 'mips' is not supported"),
    ({"images": [{"location": "/i"}], "ssh": {"localPort": 22}}, "ssh.localPort: 22"),
    ({"images": [{"location": "/i"}], "mountType": "nfs"}, "mountType: 'nfs'"),
    ({"images": [{"location": "/i"}], "mounts": [{"location": "rel"}]}, "mounts[0].location"),
    ({"images": [{"location": "/i"}], "mounts": [{"location": "/x", "mountPoint": "/etc"}]}, "system directory"),
    ({"images": [{"location": "/i"}], "cpus": -1}, "cpus: must be at least 1"),
    ({"images": [{"location": "/i"}], "memory": "lots"}, "memory: 'lots' is not a size"),
    ({"images": [{"location": "/i", "kernel": {"location": "/k", "arch": "aarch64"}}], "arch": "x86_64"},
     "kernel.arch: must be the image's arch"),
])
def test_validation_messages(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        limayaml.from_data(data, "t")
