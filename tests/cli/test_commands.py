"""Every command through CliRunner, without starting a VM: output, files, errors."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from lima_core import __version__

FAKE_DRIVER = "lima_core.testing.fakedriver:FakeDriver"


def test_version_and_help(lima) -> None:
    r = lima("--version", ok=True)
    assert r.stdout.strip() == f"lima version {__version__}"
    r = lima("--help", ok=True)
    for cmd in ("create", "start", "stop", "delete", "list", "shell", "snapshot", "info", "drivers", "template"):
        assert cmd in r.stdout
    assert "hostagent" not in r.stdout


def test_info_json(lima, driver_mode: str, driver_bin: Path) -> None:
    out = json.loads(lima("info", ok=True).stdout)
    assert out["version"] == __version__
    assert "fake" in out["vmTypes"]
    expected = "internal" if driver_mode == "internal" else str(driver_bin / "lima-driver-fake")
    assert out["vmTypesEx"]["fake"] == {"location": expected}
    assert {"name": "default", "location": out["templates"][1]["location"]} in out["templates"]
    assert out["limaHome"] == os.environ["LIMA_HOME"]
    assert out["defaultTemplate"]["images"]


def test_info_without_drivers_says_what_to_do(lima, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "")
    r = lima("info", ok=False)
    assert r.exit_code == 1
    assert "no VM driver is installed" in r.stderr and "Traceback" not in r.stderr


def test_drivers_list_shows_kind_location_and_shadowing(lima, fake_site: Path, driver_bin: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(fake_site))
    monkeypatch.setenv("LIMA_DRIVERS_PATH", str(driver_bin))
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "fake")
    rows = json.loads(lima("drivers", "list", "--format", "json", ok=True).stdout)
    fake = [r for r in rows if r["name"] == "fake"]
    assert fake[0]["kind"] == "internal" and fake[0]["available"] == "yes"
    assert fake[0]["distribution"] == "lima-driver-fake 0.1"
    assert fake[1]["kind"] == "external" and fake[1]["shadowedBy"] == "internal"
    assert fake[1]["distribution"] == "lima-driver-fake 0.1"  # build-external wrote it from that entry point
    table = lima("drivers", "list", ok=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "AVAILABLE", "DISTRIBUTION", "LOCATION"]
    assert table[1].split() == ["fake", "internal", "yes", "lima-driver-fake", "0.1", "-"]
    assert fake[0]["entryPoint"] == FAKE_DRIVER
    assert table[2].split() == ["fake", "external", "shadowed", "[1]", "lima-driver-fake", "0.1",
                                str(driver_bin / "lima-driver-fake")]
    assert table[4] == "[1] fake (external): shadowed by internal"


def test_drivers_list_is_one_line_per_driver_at_80_columns(lima, fake_site: Path, driver_bin: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is folded: the columns before LOCATION fit 80 columns, reasons go to notes below."""
    monkeypatch.syspath_prepend(str(fake_site))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LIMA_LOAD_DRIVERS", "fake,vz,wsl2")
    rows = json.loads(lima("drivers", "list", "--format", "json", ok=True).stdout)
    lines = lima("drivers", "list", ok=True).stdout.splitlines()
    table = lines[:len(rows) + 1]
    assert [line.split()[0] for line in table[1:]] == [r["name"] for r in rows]
    start = table[0].index("LOCATION")
    for line, row in zip(table[1:], rows, strict=True):
        assert line[start:] == ("-" if row["kind"] == "internal" else row["location"])  # not KIND again
        if row["kind"] == "internal":
            assert len(line) <= 80, line
    notes = [line for line in lines[len(rows) + 1:] if line]
    assert any("needs macOS" in n for n in notes) and all(n.startswith("[") for n in notes)


def test_drivers_list_reports_a_broken_driver(lima, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "lima_driver_broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lima-driver-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[lima.drivers]\nbroken = no_such_module_xyz:Driver\n")
    monkeypatch.syspath_prepend(str(site))
    rows = json.loads(lima("drivers", "list", "--format", "json", ok=True).stdout)
    broken = next(r for r in rows if r["name"] == "broken")
    assert broken["available"].startswith("broken: driver 'broken' (from lima-driver-broken 1.0) failed to import")


def test_build_external_writes_a_working_executable(lima, fake_site: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(fake_site))
    dest = tmp_path / "libexec"
    r = lima("drivers", "build-external", "fake", "--dest", str(dest), ok=True)
    exe = dest / "lima-driver-fake"
    assert exe.stat().st_mode & stat.S_IXUSR
    # dest is not where lima looks: it says what to set, and setting exactly that works
    said = re.search(r"set LIMA_DRIVERS_PATH=(\S+) and LIMA_EXTERNAL_DRIVERS=(\S+) \(", r.stderr)
    assert said, r.stderr
    assert said.group(1) == str(dest) and said.group(2) == "fake"
    monkeypatch.setenv("LIMA_DRIVERS_PATH", said.group(1))
    monkeypatch.setenv("LIMA_EXTERNAL_DRIVERS", said.group(2))
    out = json.loads(lima("info", ok=True).stdout)
    assert out["vmTypesEx"]["fake"]["location"] == str(exe)
    # a second directory later on the path: it must come first
    other = tmp_path / "other"
    r = lima("drivers", "build-external", "fake", "--dest", str(other), ok=True)
    assert f"set LIMA_DRIVERS_PATH={other}:$LIMA_DRIVERS_PATH (" in r.stderr
    r = lima("drivers", "build-external", "fake", "--dest", str(dest), ok=True)
    assert "lima uses it now" in r.stderr
    r = lima("drivers", "build-external", "nosuch", "--dest", str(dest), ok=False)
    assert "no internal driver named 'nosuch'" in r.stderr


def test_template_commands(lima, tmp_path: Path) -> None:
    assert lima("template", "list", ok=True).stdout.split() == ["debian", "default", "empty", "ubuntu"]
    shown = lima("template", "show", "default", ok=True).stdout
    assert "template:_images/ubuntu" in shown
    embedded = yaml.safe_load(lima("template", "show", "--embed", "template:default", ok=True).stdout)
    assert "base" not in embedded and embedded["images"][0]["arch"] == "x86_64"
    dst = tmp_path / "mine.yaml"
    lima("template", "copy", "--embed", "default", str(dst), ok=True)
    assert yaml.safe_load(dst.read_text()) == embedded
    r = lima("template", "copy", "default", str(dst), ok=False)
    assert "already exists" in r.stderr
    r = lima("template", "validate", str(dst), ok=True)
    assert "valid" in r.stderr


def test_template_validate_reports_position(lima, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("images:\n- location: /x\ncpus: four\n")
    r = lima("template", "validate", str(bad), ok=False)
    assert f"{bad}:3:1: cpus: expected an integer, got the string 'four'" in r.stderr
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("images:\n  - location: [\n")
    r = lima("template", "validate", str(syntax), ok=False)
    assert f"{syntax}:3:1: YAML syntax error" in r.stderr


def test_template_validate_warns_unknown_fields(lima, tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text("images:\n- location: /x\n  colour: blue\ncpuz: 3\n")
    r = lima("template", "validate", str(t), ok=True)
    assert f"{t}:3:3: unknown field 'images[0].colour'" in r.stderr
    assert f"{t}:4:1: unknown field 'cpuz'" in r.stderr


def test_create_writes_lima_files(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    r = lima("create", "--name", "one", "--set", ".cpus = 2", "--memory", "0.5", str(fake_template), ok=True)
    assert "lima start one" in r.stderr
    inst = lima_home / "one"
    assert stat.S_IMODE(inst.stat().st_mode) == 0o700
    assert stat.S_IMODE((inst / "lima-version").stat().st_mode) == 0o444
    assert stat.S_IMODE((inst / "lima.yaml").stat().st_mode) == 0o644
    cfg = yaml.safe_load((inst / "lima.yaml").read_text())
    assert cfg["cpus"] == 2 and cfg["memory"] == "0.5GiB" and cfg["vmType"] == "fake"  # Lima writes "%sGiB"
    assert (inst / "disk").exists() and not (inst / "image").exists()  # CreateDisk ran
    assert (inst / "fake-identifier").exists()  # Create ran
    assert not list(inst.glob("*.drv.sock"))  # no driver server left behind
    listed = json.loads(lima("list", "--format", "json", ok=True).stdout)
    assert listed["name"] == "one" and listed["status"] == "Stopped" and listed["cpus"] == 2
    assert listed["memory"] == 512 << 20 and listed["config"]["vmType"] == "fake"


def test_create_converts_an_image_the_driver_does_not_take(lima, driver_mode: str, tmp_path: Path,
                                                          lima_home: Path) -> None:
    """DriverFeatures.supported_image_formats: a qcow2 image reaches a raw-only driver's create_disk as raw."""
    import shutil
    import subprocess

    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is needed to make a qcow2 image")
    raw = tmp_path / "src.raw"
    raw.write_bytes(b"DISK" * 16384)
    image = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
    for name, formats in (("rawonly", "[raw]"), ("both", "[raw, qcow2]")):
        t = tmp_path / f"{name}.yaml"
        t.write_text(f"vmType: fake\nimages:\n- location: {image}\nvmOpts:\n  fake:\n    imageFormats: {formats}\n"
                     "mounts: []\n")
        r = lima("create", str(t), ok=True)
        disk = (lima_home / name / "disk").read_bytes()
        if name == "rawonly":
            assert "Converted the image from qcow2 to raw (the driver takes raw)" in r.stderr
            assert disk == raw.read_bytes()
        else:
            assert "Converted" not in r.stderr and disk == image.read_bytes()


def test_templates_without_a_disk_image(lima, driver_mode: str, tmp_path: Path, lima_home: Path) -> None:
    """images: is required, the error says what to do instead, and template:empty works offline, also as a base."""
    t = tmp_path / "noimage.yaml"
    t.write_text("vmType: fake\nmounts: []\n")
    r = lima("create", str(t), ok=False)
    assert "images: at least one image is needed" in r.stderr
    assert "`base: template:empty`" in r.stderr and "resolved against the template's directory" in r.stderr
    lima("create", "--vm-type=fake", "--name", "try", "template:empty", ok=True)
    assert (lima_home / "try" / "disk").stat().st_size == 0
    t.write_text("base: template:empty\nvmType: fake\ncpus: 1\n")
    lima("create", "--name", "based", str(t), ok=True)
    cfg = yaml.safe_load((lima_home / "based" / "lima.yaml").read_text())
    assert cfg["images"][0]["location"].endswith("/templates/_empty/empty.img")


def test_create_from_stdin_needs_name(lima, fake_template: Path, driver_mode: str, lima_home: Path) -> None:
    r = lima("create", "-", input=fake_template.read_text(), ok=False)
    assert "needs --name" in r.stderr
    lima("create", "--name", "fromstdin", "-", input=fake_template.read_text(), ok=True)
    assert (lima_home / "fromstdin" / "disk").exists()


def test_create_name_defaults_to_template_file_name(lima, fake_template: Path, driver_mode: str,
                                                    lima_home: Path) -> None:
    lima("create", str(fake_template), ok=True)
    assert (lima_home / "fake").is_dir()


def test_template_url_form_is_deprecated_but_works(lima, lima_home: Path, driver_mode: str,
                                                   fake_template: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (lima_home / "_templates").mkdir(parents=True)
    (lima_home / "_templates" / "mine.yaml").write_text(fake_template.read_text())
    r = lima("create", "template://mine", ok=True)
    assert "should be written template:mine" in r.stderr
    assert (lima_home / "mine").is_dir()


def test_unknown_vm_type_lists_drivers(lima, fake_template: Path, driver_mode: str, lima_home: Path) -> None:
    r = lima("create", "--vm-type", "nosuch", "--name", "x", str(fake_template), ok=False)
    assert r.exit_code == 1
    assert r.stderr.strip() == "lima: unknown vmType 'nosuch': no driver of that name (available: fake)"
    assert not (lima_home / "x").exists()


@pytest.mark.parametrize(("name", "fragment"), [
    ("../x", "invalid instance name '../x'"),
    ("x.yaml", "must not end in .yaml"),
    ("a" * 200, "the limit is 76"),
    ("ünïcode", "invalid instance name"),
    ("-x", "invalid instance name"),
])
def test_bad_names(lima, name: str, fragment: str, fake_template: Path, driver_mode: str) -> None:
    r = lima("create", "--name", name, str(fake_template), ok=False)
    assert r.exit_code == 1 and fragment in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_template_names_cannot_escape(lima) -> None:
    r = lima("create", "template:../../etc/passwd", ok=False)
    assert "cannot contain '..'" in r.stderr


def test_failed_create_removes_only_what_it_made(lima, tmp_path: Path, driver_mode: str, lima_home: Path) -> None:
    t = tmp_path / "missing.yaml"
    t.write_text(f"vmType: fake\nimages:\n- location: {tmp_path / 'nope.img'}\nmounts: []\n")
    r = lima("create", "--name", "broken", str(t), ok=False)
    assert "nope.img does not exist" in r.stderr
    assert not (lima_home / "broken").exists()
    assert t.exists()


def test_create_refuses_existing_instance_and_keeps_it(lima, fake_template: Path, driver_mode: str,
                                                       lima_home: Path) -> None:
    lima("create", "--name", "keep", str(fake_template), ok=True)
    disk = (lima_home / "keep" / "disk").read_bytes()
    r = lima("create", "--name", "keep", str(fake_template), ok=False)
    assert "already exists" in r.stderr
    assert (lima_home / "keep" / "disk").read_bytes() == disk


def test_validate_error_from_driver(lima, tmp_path: Path, driver_mode: str, lima_home: Path) -> None:
    image = tmp_path / "i.raw"
    image.write_bytes(b"x")
    t = tmp_path / "v.yaml"
    t.write_text(f"vmType: fake\nvmOpts:\n  fake:\n    invalid: needs a bigger boat\nimages:\n- location: {image}\n"
                 "mounts: []\n")
    r = lima("create", "--name", "v", str(t), ok=False)
    assert r.stderr.strip().splitlines()[-1] == "lima: needs a bigger boat"
    assert not (lima_home / "v").exists()


def test_list_formats(lima, fake_template: Path, driver_mode: str) -> None:
    for n in ("b", "a"):
        lima("create", "--name", n, str(fake_template), ok=True)
    assert lima("list", "-q", ok=True).stdout.split() == ["a", "b"]
    table = lima("list", ok=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "SSH", "VMTYPE", "ARCH", "CPUS", "MEMORY", "DISK", "DIR"]
    assert table[1].split()[:2] == ["a", "Stopped"]
    docs = list(yaml.safe_load_all(lima("list", "--format", "yaml", ok=True).stdout))
    assert [d["name"] for d in docs] == ["a", "b"]
    assert json.loads(lima("list", "--format", "json", "b", ok=True).stdout)["name"] == "b"
    r = lima("list", "nosuch", "a", ok=False)  # as limactl: the others are listed, the exit status is 1
    assert r.exit_code == 1 and "No instance matching nosuch found" in r.stderr
    assert r.stdout.splitlines()[1].split()[0] == "a"
    r = lima("list", "--format", "xml", ok=False)
    assert "invalid format 'xml'" in r.stderr


def test_list_shows_broken_instance(lima, lima_home: Path) -> None:
    (lima_home / "bad").mkdir(parents=True)
    (lima_home / "bad" / "lima.yaml").write_text("cpus: [\n")
    out = json.loads(lima("list", "--format", "json", ok=True).stdout)
    assert out["status"] == "Broken" and "YAML syntax error" in out["errors"][0]


def test_delete_missing_is_a_warning(lima) -> None:
    r = lima("delete", "ghost", ok=True)
    assert "does not exist" in r.stderr


def test_shell_needs_running(lima, fake_template: Path, driver_mode: str) -> None:
    lima("create", "--name", "s", str(fake_template), ok=True)
    r = lima("shell", "s", "true", ok=False)
    assert "is Stopped; run `lima start s`" in r.stderr


def test_snapshots_while_stopped(lima, fake_template: Path, driver_mode: str, lima_home: Path) -> None:
    lima("create", "--name", "snap", str(fake_template), ok=True)
    lima("snapshot", "create", "snap", "--tag", "t1", ok=True)
    lima("snapshot", "create", "snap", "--tag", "t2", ok=True)
    assert lima("snapshot", "list", "-q", "snap", ok=True).stdout.split() == ["t1", "t2"]
    lima("snapshot", "apply", "snap", "--tag", "t1", ok=True)
    lima("snapshot", "delete", "snap", "--tag", "t1", ok=True)
    assert lima("snapshot", "list", "-q", "snap", ok=True).stdout.split() == ["t2"]
    r = lima("snapshot", "apply", "snap", "--tag", "gone", ok=False)
    assert r.stderr.strip() == "lima: snapshot 'gone' not found"
    r = lima("snapshot", "create", "snap", ok=False)
    assert "--tag is required" in r.stderr
    assert not list((lima_home / "snap").glob("*.drv.sock"))  # no orphan driver server (Lima leaves one)


def test_create_reports_yaml_position_and_unknown_fields(lima, tmp_path: Path, driver_mode: str) -> None:
    image = tmp_path / "i.raw"
    image.write_bytes(b"x")
    t = tmp_path / "typed.yaml"
    t.write_text(f"vmType: fake\nimages:\n- location: {image}\nmounts: []\ncpus: many\n")
    r = lima("create", "--name", "typed", str(t), ok=False)
    assert r.stderr.strip() == f"lima: {t}:5:1: cpus: expected an integer, got the string 'many'"
    t.write_text(f"vmType: fake\nimages:\n- location: {image}\nmounts: []\nfavouriteColour: blue\n")
    r = lima("create", "--name", "typed", str(t), ok=True)
    assert f"WARNING: {t}:5:1: unknown field 'favouriteColour' is ignored" in r.stderr


def test_debug_shows_the_traceback(lima) -> None:
    r = lima("--debug", "create", "template:../x")
    assert r.exit_code != 0
    assert r.exception is not None and "cannot contain" in str(r.exception)


@pytest.mark.parametrize("args", [("template", "list"), ("info",)])
def test_a_reader_that_closed_the_pipe_is_no_error(args: tuple[str, ...], lima_home: Path) -> None:
    """`lima template list | head -1`: the rest of the output goes nowhere, without a word on stderr."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that has already gone: every write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "lima_core", *args], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141
