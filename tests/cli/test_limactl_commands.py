"""limactl's commands and flags through CliRunner with the fake driver: edit flags and --set as yq, list
formats, edit, clone, rename, protect, factory-reset, disks and their lock, show-ssh, prune, validate,
info --yq, completion, global flags after the command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def saved(lima_home: Path, name: str) -> dict:
    return yaml.safe_load((lima_home / name / "lima.yaml").read_text())


# -- create / start flags ----------------------------------------------------------------------------------


def test_create_flags_become_lima_yaml(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                       tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    lima("create", "--name", "f", "--cpus", "2", "--memory", "1.5", "--disk", "3", f"--mount={share}:w",
         "--dns", "1.1.1.1,9.9.9.9", "--port-forward", "8080:80,static=true", "--param", "X=1", "--containerd=none",
         "--video", "--ssh-port", "2222", "--set", '.env.FOO = "bar" | .provision = [{"mode": "system", '
         '"script": "echo {{.Param.X}}"}]', str(fake_template), ok=True)
    cfg = saved(lima_home, "f")
    assert cfg["cpus"] == 2 and cfg["memory"] == "1.5GiB" and cfg["disk"] == "3GiB"
    assert cfg["mounts"] == [{"location": str(share), "mountPoint": str(share), "writable": True}]
    assert cfg["dns"] == ["1.1.1.1", "9.9.9.9"] and cfg["hostResolver"] == {"enabled": False}
    assert cfg["portForwards"] == [{"guestPort": 80, "hostPort": 8080, "static": True}]
    assert cfg["param"] == {"X": "1"} and cfg["env"] == {"FOO": "bar"}
    assert cfg["containerd"] == {"user": False, "system": False}
    assert cfg["video"] == {"display": "default"} and cfg["ssh"] == {"localPort": 2222}


def test_bool_flags_take_gos_false_form(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    lima("--tty=false", "create", "--name", "b", "--video=false", "--plain=true", "--debug=false", str(fake_template),
         ok=True)
    cfg = saved(lima_home, "b")
    assert cfg["video"] == {"display": "none"} and cfg["plain"] is True


def test_set_is_a_yq_expression_with_limas_restrictions(lima, driver_mode: str, fake_template: Path,
                                                        lima_home: Path) -> None:
    lima("create", "--name", "y", "--set", ".cpus = 2 | .memory = \"1GiB\"", "--set", ".mounts += []",
         str(fake_template), ok=True)
    assert saved(lima_home, "y")["cpus"] == 2
    for expr, said in (("env.HOME", "`env` is not allowed"), ('.x = $ENV.HOME', "`$ENV` is not allowed"),
                       ('.x = "\\(env.PATH)"', "`env` is not allowed"), ('include "m"; .', "`include` is not allowed"),
                       (".a = ", "not a valid expression"), (".a, .b", "gives 2 results"),
                       (".cpus", "not a mapping")):
        r = lima("create", "--name", "z", "--set", expr, str(fake_template), ok=False)
        assert said in r.stderr and "Traceback" not in r.stderr, (expr, r.stderr)
        assert r.stderr.startswith(f"lima: --set {expr!r}:"), r.stderr
    assert not (lima_home / "z").exists()
    r = lima("create", "--name", "z", "--cpus", "two", str(fake_template), ok=False)
    assert "--cpus: 'two' is not a whole number" in r.stderr


def test_a_runaway_expression_is_stopped() -> None:
    from lima_core import yq
    from lima_core.errors import ConfigError

    with pytest.raises(ConfigError, match="did not finish within"):
        yq.TIMEOUT, old = 1.0, yq.TIMEOUT
        try:
            yq.apply(".a = last(range(1e12))", {}, "--set")
        finally:
            yq.TIMEOUT = old
    with pytest.raises(ConfigError, match="more than 10000 results"):
        yq.evaluate("repeat(.)", [{}], "--yq")


def test_dry_run_lists_and_mount_conflicts(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    r = lima("create", "--dry-run", "--name", "d", "--cpus", "3", str(fake_template), ok=True)
    assert yaml.safe_load(r.stdout)["cpus"] == 3 and not (lima_home / "d").exists()
    assert "default" in lima("create", "--list-templates", ok=True).stdout.split()
    assert "fake" in lima("start", "--list-drivers", ok=True).stdout.split()
    r = lima("create", "--mount", "/a", "--mount-only", "/b", str(fake_template), ok=False)
    assert "flag `--mount` conflicts with `--mount-only`" in r.stderr


def test_start_flags_edit_an_existing_instance(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    lima("create", "--name", "e", str(fake_template), ok=True)
    r = lima("start", "e", "--cpus", "4", "--arch", "aarch64", "--dry-run", ok=True)
    assert "`--arch` is not applicable to an existing instance" in r.stderr
    assert yaml.safe_load(r.stdout)["cpus"] == 4 and saved(lima_home, "e").get("cpus") == 1  # dry run
    r = lima("start", "--name", "e", str(fake_template), ok=False)
    assert "instance 'e' already exists" in r.stderr


# -- list ---------------------------------------------------------------------------------------------------


def test_list_formats_fields_yq_and_filter(lima, driver_mode: str, fake_template: Path) -> None:
    lima("create", "--name", "l1", "--cpus", "2", str(fake_template), ok=True)
    lima("create", "--name", "l2", "--set", '.param.K = "v" | .provision = [{"mode": "system", "script": '
         '"echo {{.Param.K}}"}]', str(fake_template), ok=True)
    out = lima("list", "--format", "{{.Name}} {{.Status}} {{.CPUs}} {{.VMType}} {{.SSHLocalPort}} {{json .Param}}",
               ok=True).stdout.splitlines()
    assert out == ["l1 Stopped 2 fake 0 {}", 'l2 Stopped 1 fake 0 {"K": "v"}']
    assert lima("list", "-f", "{{.Config.CPUs}}-{{.Param.K}}", "l2", ok=True).stdout.strip() == "1-v"
    assert json.loads(lima("list", "--json", "l1", ok=True).stdout)["name"] == "l1"
    fields = lima("list", "--list-fields", ok=True).stdout.split()
    assert {"Name", "Status", "VMType", "SSHLocalPort", "CPUs", "Param", "Config"} <= set(fields)
    assert fields == sorted(fields)
    assert lima("list", "--yq", ".cpus", ok=True).stdout.split() == ["2", "1"]
    assert lima("list", "-q", "--filter", ".cpus == 2", ok=True).stdout.split() == ["l1"]
    assert lima("list", "-l", '.name == "l2"', "--format", "json", ok=True).stdout.count("\n") == 1
    for args, said in ((["--json", "--format", "yaml"], "--json conflicts with option --format"),
                       (["--list-fields", "--format", "json"], "--list-fields conflicts"),
                       (["--yq", ".", "--format", "table"], "--yq only works with --format json or yaml"),
                       (["-q", "--format", "json"], "--quiet can only be used with '--format table'"),
                       (["--format", "{{if .Name}}x{{end}}"], "{{if .Name}} is not supported"),
                       (["--format", "{{.Nope}}"], "there is no field 'Nope'")):
        r = lima("list", *args, ok=False)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


# -- edit, clone, rename, protect, factory-reset ---------------------------------------------------------------


def test_edit_validates_before_saving(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    lima("create", "--name", "ed", str(fake_template), ok=True)
    before = (lima_home / "ed" / "lima.yaml").read_text()
    lima("edit", "ed", "--cpus", "3", "--set", ".mounts = []", ok=True)
    assert saved(lima_home, "ed")["cpus"] == 3
    edited = (lima_home / "ed" / "lima.yaml").read_text()
    for args, said in ((["--set", '.cpus = "x"'], "cpus: expected an integer"),
                       (["--vm-type", "qemu"], "an existing instance's vmType cannot change"),
                       (["--disk", "0.5"], "shrinking the disk is not supported"),
                       (["--set", ".vmOpts.fake.invalid = \"no way\""], "no way"),
                       ([], "nothing to edit")):
        r = lima("edit", "ed", *args, ok=False)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert (lima_home / "ed" / "lima.yaml").read_text() == edited  # a refused edit changes nothing
    assert before != edited


def test_edit_in_an_editor_keeps_a_refused_edit(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lima("create", "--name", "ee", str(fake_template), ok=True)
    editor = tmp_path / "editor"
    editor.write_text("#!/bin/sh\nsed -i 's/^cpus: 1$/cpus: many/' \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.chdir(tmp_path)
    r = lima("edit", "ee", "--tty", "--no-start", ok=False)
    assert "your edit is kept as" in r.stderr and (tmp_path / "lima.REJECTED.yaml").exists()
    assert "cpus: many" in (tmp_path / "lima.REJECTED.yaml").read_text()
    assert saved(lima_home, "ee")["cpus"] == 1
    editor.write_text("#!/bin/sh\nsed -i 's/^cpus: 1$/cpus: 2/' \"$1\"\n")
    lima("edit", "ee", "--tty", "--no-start", ok=True)
    assert saved(lima_home, "ee")["cpus"] == 2


def test_clone_rename_protect_factory_reset(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    lima("create", "--name", "src", str(fake_template), ok=True)
    (lima_home / "src" / "disk").write_bytes(b"data" * 1000)
    lima("protect", "src", ok=True)
    lima("clone", "src", "cl", "--cpus", "2", "--no-start", ok=True)
    assert (lima_home / "cl" / "disk").read_bytes() == b"data" * 1000
    assert not (lima_home / "cl" / "protected").exists()  # Lima's SkipOnClone
    assert saved(lima_home, "cl")["cpus"] == 2 and saved(lima_home, "src")["cpus"] == 1
    r = lima("delete", "src", ok=False)
    assert "is protected; run `lima unprotect src`" in r.stderr
    r = lima("rename", "src", "moved", ok=True)
    assert not (lima_home / "src").exists() and (lima_home / "moved" / "protected").exists()
    r = lima("clone", "moved", "cl", ok=False)
    assert "instance 'cl' already exists" in r.stderr
    lima("unprotect", "moved", ok=True)
    lima("factory-reset", "moved", ok=True)
    left = sorted(p.name for p in (lima_home / "moved").iterdir())
    assert "disk" not in left and "lima.yaml" in left and "lima-version" in left
    lima("delete", "moved", "cl", ok=True)


def test_clone_of_a_running_instance_is_refused(lima, driver_mode: str, fake_template: Path, fake_ssh: Path,
                                                instances: list[str], leftovers) -> None:
    instances.append("run")
    lima("start", "--name", "run", str(fake_template), ok=True)
    r = lima("clone", "run", "copy", ok=False)
    assert "cannot clone instance 'run': it is Running; run `lima stop run` first" in r.stderr
    r = lima("restart", "run", ok=True)
    assert "READY" in r.stderr
    lima("stop", "run", ok=True)
    assert leftovers() == []


# -- disks ------------------------------------------------------------------------------------------------------


def test_disk_commands(lima, lima_home: Path, tmp_path: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img makes qcow2 disks")
    lima("disk", "create", "d1", "--size", "64MiB", ok=True)
    lima("disk", "create", "d2", "--size", "1MiB", "--format", "raw", ok=True)
    rows = [json.loads(line) for line in lima("disk", "ls", "--json", ok=True).stdout.splitlines()]
    assert [(r["name"], r["format"], r["size"], r["mountPoint"]) for r in rows] == [
        ("d1", "qcow2", 64 << 20, "/mnt/lima-d1"), ("d2", "raw", 1 << 20, "/mnt/lima-d2")]
    assert (lima_home / "_disks" / "d2" / "datadisk").stat().st_blocks == 0  # sparse
    lima("disk", "resize", "d1", "--size", "128MiB", ok=True)
    r = lima("disk", "resize", "d1", "--size", "1MiB", ok=False)
    assert "shrinking" in r.stderr
    r = lima("disk", "create", "d1", "--size", "1MiB", ok=False)
    assert "already exists" in r.stderr
    r = lima("disk", "create", "../x", "--size", "1MiB", ok=False)
    assert "invalid disk name" in r.stderr
    src = tmp_path / "in.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "2M"], check=True)
    lima("disk", "import", "imp", str(src), ok=True)
    r = lima("disk", "import", "bad", str(tmp_path / "nope"), ok=False)
    assert "is not a file" in r.stderr and not (lima_home / "_disks" / "bad").exists()
    table = lima("disk", "list", ok=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "FORMAT", "DIR", "IN-USE-BY"] and len(table) == 4
    lima("disk", "rm", "d2", "imp", ok=True)
    assert sorted(p.name for p in (lima_home / "_disks").iterdir()) == ["d1"]


def test_additional_disks_are_locked_to_one_instance(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                                     fake_ssh: Path, instances: list[str], leftovers) -> None:
    lima("disk", "create", "shared", "--size", "1MiB", "--format", "raw", ok=True)
    for name in ("one", "two"):
        instances.append(name)
        lima("create", "--name", name, "--set", '.additionalDisks = ["shared"]', str(fake_template), ok=True)
    lima("start", "one", ok=True)
    lock = lima_home / "_disks" / "shared" / "in_use_by"
    assert os.readlink(lock) == str(lima_home / "one")
    r = lima("start", "two", ok=False)
    assert "disk 'shared' is in use by instance 'one'" in r.stderr
    r = lima("disk", "delete", "shared", ok=False)
    assert "in use by instance 'one'" in r.stderr
    r = lima("disk", "unlock", "shared", ok=True)
    assert "used by running instance 'one'" in r.stderr and lock.is_symlink()
    lima("stop", "one", ok=True)
    assert not lock.is_symlink()  # the driver's stop unlocked it
    lima("start", "two", ok=True)
    assert os.readlink(lock) == str(lima_home / "two")
    lima("stop", "-f", "two", ok=True)
    assert not lock.is_symlink()  # so did stop -f
    r = lima("disk", "delete", "shared", ok=True)
    assert "refer to it in additionalDisks" in r.stderr and (lima_home / "_disks" / "shared").exists()
    lima("disk", "delete", "-f", "shared", ok=True)
    assert leftovers() == []


def test_a_stale_lock_is_taken_over(lima_home: Path) -> None:
    from lima_core import disks

    disks.create("st", 1 << 20, "raw")
    os.symlink(str(lima_home / "gone"), lima_home / "_disks" / "st" / "in_use_by")
    inst = lima_home / "here"
    inst.mkdir()
    assert disks.attach(["st"], inst) == [lima_home / "_disks" / "st" / "datadisk"]
    assert os.readlink(lima_home / "_disks" / "st" / "in_use_by") == str(inst)


# -- the smaller commands -----------------------------------------------------------------------------------------


def test_show_ssh_formats(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    lima("create", "--name", "s", str(fake_template), ok=True)
    cmd = lima("show-ssh", "s", ok=True)
    assert "deprecated" in cmd.stderr
    assert cmd.stdout.startswith("ssh -o IdentityFile=") and cmd.stdout.strip().endswith(" lima-s")
    options = lima("show-ssh", "--format", "options", "s", ok=True).stdout.splitlines()
    assert "Hostname=127.0.0.1" in options and any(o.startswith("User=") for o in options)
    config = lima("show-ssh", "-f", "config", "s", ok=True).stdout.splitlines()
    assert config[0] == "Host lima-s" and config[1].startswith("  IdentityFile ")
    args = lima("show-ssh", "-f", "args", "s", ok=True).stdout
    assert not args.startswith("ssh") and "lima-s" not in args
    assert "invalid format" in lima("show-ssh", "-f", "xml", "s", ok=False).stderr


def test_prune(lima, driver_mode: str, fake_template: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lima_core import download

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lima("create", "--name", "p", str(fake_template), ok=True)
    used = download.cache_entry("https://example.invalid/used.img")
    unused = download.cache_entry("https://example.invalid/unused.img")
    for entry in (used, unused):
        entry.mkdir(parents=True)
        (entry / "data").write_bytes(b"x")
    lima("edit", "p", "--set", '.images += [{"location": "https://example.invalid/used.img", "arch": "aarch64"}]',
         ok=True)
    lima("prune", "--keep-referred", ok=True)
    assert used.exists() and not unused.exists()
    lima("prune", ok=True)
    assert not used.exists()


def test_validate_fill_and_template_yq(lima, fake_template: Path) -> None:
    r = lima("validate", "--fill", str(fake_template), ok=True)
    assert "valid" in r.stderr and yaml.safe_load(r.stdout)["cpus"] == 1
    assert lima("template", "yq", str(fake_template), ".images[0].location", ok=True).stdout.strip().endswith(
        "image.raw")


def test_info_yq(lima, driver_mode: str) -> None:
    assert "fake" in json.loads(lima("info", "--yq", ".vmTypes", ok=True).stdout)


def test_global_flags_after_the_command(lima, driver_mode: str, fake_template: Path) -> None:
    r = lima("create", "--name", "g", str(fake_template), "--log-level", "warn", ok=True)
    assert "Run `lima start g`" not in r.stderr  # an info line
    r = lima("list", "--log-format", "json", "--log-level", "debug", "nosuch")
    assert json.loads(r.stderr.splitlines()[0])["level"] in ("warning", "debug")
    r = lima("list", "--tty", "-y", ok=False)
    assert "cannot use both --tty and --yes" in r.stderr
    r = lima("list", "--log-level", "loud", ok=False)
    assert "unknown log level 'loud'" in r.stderr


def test_completion_script_loads_in_bash_and_completes(lima, tmp_path: Path, lima_home: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is needed")
    script = lima("completion", "bash", ok=True).stdout
    assert "complete " in script and "_LIMA_COMPLETE" in script
    (lima_home / "inst-one").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lima").write_text(f"#!/bin/sh\nexec {sys.executable} -m lima_core \"$@\"\n")
    (bin_dir / "lima").chmod(0o755)
    (tmp_path / "completion.sh").write_text(script)
    test = ('source completion.sh; complete -p lima >/dev/null || exit 9; '
            'COMP_WORDS=(lima sta); COMP_CWORD=1; _lima_completion lima; echo "${COMPREPLY[@]}"; '
            'COMP_WORDS=(lima shell inst); COMP_CWORD=2; _lima_completion lima; echo "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "-c", test], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert "start" in first.split() and "inst-one" in second.split()
    assert "invalid shell" in lima("completion", "tcsh", ok=False).stderr


def test_start_progress_shows_the_guests_log(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                             fake_ssh: Path, instances: list[str], leftovers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """--progress tails the guest's provisioning log over SSH while the instance starts (the fake ssh maps
    the guest's /run/ into the fake VM's root, so the log is put there)."""
    from lima_core.cli import _progress

    monkeypatch.setattr(_progress, "REMOTE", "tail -n +{start} /run/provision.log")
    instances.append("prog")
    lima("create", "--name", "prog", str(fake_template), ok=True)
    run = lima_home / "prog" / "fakevm-root" / "run"
    run.mkdir(parents=True)
    (run / "provision.log").write_text("installing packages\nall done\n")
    r = lima("start", "--progress", "prog", ok=True)
    assert "cloud-init: installing packages\ncloud-init: all done\n" in r.stderr
    assert r.stderr.index("cloud-init: all done") < r.stderr.index("READY")
    lima("stop", "prog", ok=True)
    assert leftovers() == []


def test_start_foreground_is_the_host_agent(lima, driver_mode: str, fake_template: Path, lima_home: Path,
                                            fake_ssh: Path, instances: list[str], leftovers) -> None:
    """--foreground: `lima start` becomes the host agent (events in ha.stdout.log as always) until stopped."""
    import time

    instances.append("fg")
    lima("create", "--name", "fg", str(fake_template), ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "lima_core", "start", "--foreground", "fg"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        log = lima_home / "fg" / "ha.stdout.log"
        while not log.exists() or '"running": true' not in log.read_text():  # READY
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        assert json.loads(lima("list", "--json", "fg", ok=True).stdout)["hostAgentPID"] == proc.pid
        lima("stop", "fg", ok=True)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "host agent exiting" in proc.stderr.read()  # its log on the terminal
    assert leftovers() == []


def test_create_with_a_terminal_asks_first(lima, driver_mode: str, fake_template: Path, lima_home: Path) -> None:
    r = lima("create", "--tty", "--name", "ask", str(fake_template), input="3\n", ok=True)
    assert "Proceed with the current configuration" in r.stderr and not (lima_home / "ask").exists()
    lima("create", "--tty", "--name", "ask", str(fake_template), input="1\n", ok=True)
    assert (lima_home / "ask" / "lima.yaml").exists()


def test_shell_start_starts_a_stopped_instance(lima, driver_mode: str, fake_template: Path, fake_ssh: Path,
                                               instances: list[str], leftovers) -> None:
    instances.append("ss")
    lima("create", "--name", "ss", str(fake_template), ok=True)
    r = lima("shell", "ss", "true", ok=False)
    assert "is Stopped; run `lima start ss`, or `lima shell --start ss`" in r.stderr
    r = lima("shell", "--start", "ss", "echo", "in", ok=True)
    assert r.stdout.strip() == "in" and "READY" in r.stderr
    lima("stop", "ss", ok=True)
    assert leftovers() == []


def test_copy_chooses_its_backend_and_arguments(lima, driver_mode: str, fake_template: Path, fake_ssh: Path,
                                                lima_home: Path, tmp_path: Path, instances: list[str], leftovers,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """scp and rsync are stand-ins that record their arguments here (the copies themselves are checked against
    the test guest in e2e); the fake ssh runs `command -v rsync` on the host, where the stand-in is found."""
    tools = tmp_path / "tools"
    tools.mkdir()
    log = tmp_path / "argv.log"
    for tool in ("scp", "rsync"):
        (tools / tool).write_text(f"#!/bin/sh\n{{ printf '%s' {tool}; printf '\\t%s' \"$@\"; echo; }} >> {log}\n")
        (tools / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    for name in ("c1", "c2"):
        instances.append(name)
        lima("start", "--name", name, str(fake_template), ok=True)
    cfg1, cfg2 = lima_home / "c1" / "ssh.config", lima_home / "c2" / "ssh.config"

    def last() -> list[str]:
        return log.read_text().splitlines()[-1].split("\t")

    lima("copy", "-r", "c1:/etc/x", str(tmp_path), ok=True)
    assert last() == ["rsync", "-a", "-e", f"{shutil.which('ssh')} -F {cfg1}", "--", "lima-c1:/etc/x", str(tmp_path)]
    lima("cp", "--backend", "scp", "-v", str(tmp_path / "f"), "c1:", ok=True)
    assert last() == ["scp", "-F", str(cfg1), "-v", "--", str(tmp_path / "f"), "lima-c1:"]
    lima("copy", "c1:a", "c2:b", ok=True)  # two instances: scp through the host, one config with both
    words = last()
    assert words[:2] == ["scp", "-F"] and words[3:] == ["-3", "--", "lima-c1:a", "lima-c2:b"]
    r = lima("copy", "--backend", "rsync", "c1:a", "c2:b", ok=False)
    assert "rsync cannot copy between two instances" in r.stderr
    for args, said in ((["c1:a:b", "x"], "more than one colon"), (["nosuch:/x", "."], "does not exist"),
                       ([str(tmp_path), "."], "none of the paths is in an instance"),
                       (["--backend", "ftp", "c1:x", "."], "invalid backend")):
        r = lima("copy", *args, ok=False)
        assert said in r.stderr, (args, r.stderr)
    lima("stop", "c1", ok=True)
    r = lima("copy", "c1:x", ".", ok=False)
    assert "instance 'c1' is Stopped; run `lima start c1`" in r.stderr
    lima("stop", "c2", ok=True)
    assert leftovers() == []
    assert cfg2.exists()
