"""Files under LIMA_HOME that are not as lima-core left them: a stray byte, random bytes, the rest of a delete
that was killed, directories other users may write to, a LIMA_HOME moved to a longer path, a bad value in
``_config/``. Real `lima` processes (the fuzz: typer's CliRunner, so that any exception is seen as such).

Whatever the file holds, no command prints a traceback, ``lima list`` lists every instance, and
``lima delete -f`` removes the one that is broken.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import hints, no_processes_of, quick_status, run, wait_for

from lima_core.units import human_size

pytestmark = pytest.mark.usefixtures("fake_ssh", "internal")
LATIN1 = b"# r\xe9sum\xe9\n"  # a Latin-1 comment: the first stray byte is 0xe9, on line 1


def _prepend(path: Path, data: bytes) -> None:
    path.write_bytes(data + path.read_bytes())


def _list(name: str | None = None) -> tuple[dict[str, dict], str]:
    """`lima list --format json` (real process): instances by name, and stderr."""
    import json

    r = run("list", "--format", "json", *([name] if name else []))
    assert r.returncode == 0, r.stderr
    return {i["name"]: i for i in map(json.loads, r.stdout.splitlines())}, r.stderr


@pytest.mark.parametrize("where", ["lima.yaml", "_config/default.yaml", "_config/override.yaml"])
def test_a_stray_byte_in_a_configuration_file(where: str, lima, fake_template: Path, lima_home: Path,
                                              instances: list[str], leftovers) -> None:
    instances += ["t1", "t2"]
    lima("create", "--name", "t1", str(fake_template), ok=True)
    lima("create", "--name", "t2", str(fake_template), ok=True)
    path = lima_home / "t1" / where if where == "lima.yaml" else lima_home / where
    path.parent.mkdir(exist_ok=True)
    _prepend(path, LATIN1) if path.exists() else path.write_bytes(LATIN1)
    said = f"{path} is not UTF-8 text (byte 0xe9 at line 1)"
    broken = ["t1"] if where == "lima.yaml" else ["t1", "t2"]

    listed, _ = _list()
    table = run("list")
    assert sorted(listed) == ["t1", "t2"] and all(name in table.stdout for name in ["t1", "t2"])
    for name in ["t1", "t2"]:
        if name in broken:
            assert listed[name]["status"] == "Broken" and said in listed[name]["errors"], listed[name]
            assert f"WARNING: {name}: {said}" in table.stderr
        else:
            assert listed[name]["status"] == "Stopped"

    r = run("start", "t1")
    assert r.returncode == 1 and said in r.stderr and "`lima delete -f t1`" in r.stderr
    assert run("shell", "t1", "--", "true").returncode == 1
    assert run("stop", "t1").returncode == 0
    assert run("stop", "-f", "t1").returncode == 0
    r = run("delete", "t1")
    assert r.returncode == 1 and said in r.stderr and hints(r.stderr) == [["delete", "-f", "t1"]]
    assert run("delete", "-f", "t1").returncode == 0 and not (lima_home / "t1").exists()
    if where != "lima.yaml":
        path.unlink()
    assert run("start", "t2").returncode == 0  # the others work as usual
    assert run("stop", "t2").returncode == 0
    assert leftovers() == []


@pytest.mark.parametrize("name", ["ha.pid", "fake.pid", "lima-version", "ssh.config", "ha.stdout.log"])
def test_a_stray_byte_in_a_file_of_a_running_instance(name: str, lima, fake_template: Path, lima_home: Path,
                                                      instances: list[str], leftovers) -> None:
    """Pid files lead to their process through the identity record beside them; the others are named."""
    instances.append("r")
    lima("create", "--name", "r", str(fake_template), ok=True)
    assert run("start", "r").returncode == 0
    path = lima_home / "r" / name
    _prepend(path, b"\xe9")
    listed, _ = _list("r")
    assert listed["r"]["status"] == "Running", listed
    err = run("list", "r").stderr
    if name != "ha.stdout.log":  # an event log line that is not an event is skipped
        assert f"{path} is not UTF-8 text (byte 0xe9 at line 1)" in err
    r = run("stop", "r")
    assert r.returncode == 0 and "is stopped" in r.stderr
    assert quick_status("r")["status"] == "Stopped"
    assert leftovers() == []


# -- the fuzz ---------------------------------------------------------------------------------------------

#: The fuzz's budget in seconds, from its start (the cases every file needs run first, whatever it is).
FUZZ_SECONDS = float(os.environ.get("LIMA_FUZZ_SECONDS", "25"))
FUZZ_SEED = int(os.environ.get("LIMA_FUZZ_SEED", "21"))
CONFIG_FILES = ("lima.yaml", "default.yaml", "override.yaml")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Random bytes into *data*: one byte inserted, a few overwritten, the whole replaced, or a cut."""
    how = rng.choice(["insert", "overwrite", "replace", "cut"])
    if how == "insert" or not data:
        at = rng.randrange(len(data) + 1)
        return data[:at] + bytes([rng.randrange(0x80, 0x100)]) + data[at:]
    if how == "overwrite":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if how == "replace":
        return rng.randbytes(rng.randint(1, 200))
    return data[:rng.randrange(len(data))]


def _not_text(data: bytes) -> str | None:
    """"byte 0x.. at line N" for data that is not UTF-8, else None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"byte 0x{data[exc.start]:02x} at line {line}"
    return None


def _ok(result, *args: str) -> None:
    """Exit 0, or 1 with one `lima: ...` line; never an exception other than SystemExit."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.stderr, (args, result.stderr)
    assert result.exit_code in (0, 1), (args, result.exit_code, result.stderr)
    if result.exit_code == 1:
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("lima: "), (args, result.stderr)


def test_random_bytes_in_every_file_of_lima_home(lima, fake_template: Path, lima_home: Path, tmp_path: Path,
                                                 instances: list[str]) -> None:
    """Random bytes into each file of an instance (stopped, and running) and of ``_config/``, then `lima list`,
    `start`, `stop -f` and `delete -f`: never a traceback; a configuration file that is not text makes the
    instance Broken with a message naming the file and the byte; `stop -f` leaves no process; `delete -f` works.

    Each configuration file alone; every other file of the stopped instance at once; every file only a
    running instance has at once (of a pid file and its identity record, one: with both gone nothing
    tells which process is the VM); then single files at random until the budget is spent. Seeded
    (LIMA_FUZZ_SEED), with a fixed budget (LIMA_FUZZ_SECONDS).
    """
    t0 = time.monotonic()
    instances.append("fz")
    config = lima_home / "_config"
    config.mkdir()
    (config / "default.yaml").write_text("# defaults for every instance\ncpus: 1\n")
    (config / "override.yaml").write_text("memory: 256MiB\n")
    lima("create", "--name", "fz", str(fake_template), ok=True)
    lima("start", "fz", ok=True)  # logs, ssh.config, cidata, the key pair
    running = {f"fz/{p.name}" for p in (lima_home / "fz").iterdir() if p.is_file() and p.suffix != ".lock"}
    lima("stop", "fz", ok=True)
    pristine = tmp_path / "pristine"
    shutil.copytree(lima_home, pristine, symlinks=True)
    stopped = {f"fz/{p.name}" for p in (lima_home / "fz").iterdir() if p.is_file()}
    stopped |= {f"_config/{p.name}" for p in config.iterdir()}
    configs = sorted(rel for rel in stopped if rel.rsplit("/", 1)[1] in CONFIG_FILES)
    rng = random.Random(FUZZ_SEED)
    only_running = sorted(running - stopped)
    for rel in list(only_running):  # one of each pid file and its record
        if rel.endswith(".pid") and f"{rel}.identity" in only_running:
            only_running.remove(rng.choice([rel, f"{rel}.identity"]))
    cases = [("stopped", [rel]) for rel in configs] + [("stopped", sorted(stopped - set(configs))),
                                                       ("running", only_running)]
    tried = 0
    while cases or time.monotonic() - t0 < FUZZ_SECONDS:
        state, files = cases.pop(0) if cases else rng.choice([("stopped", [rng.choice(sorted(stopped))]),
                                                              ("running", [rng.choice(sorted(running))])])
        tried += 1
        shutil.rmtree(lima_home)
        shutil.copytree(pristine, lima_home, symlinks=True)
        if state == "running":
            lima("start", "fz", ok=True)
        changed = {}
        for rel in files:
            path = lima_home / rel
            if path.is_file():  # a file of one run only (a log not written yet) may be missing
                changed[path] = _mutate(path.read_bytes(), rng)
                path.write_bytes(changed[path])
        where = f"seed {FUZZ_SEED}, case {tried} ({state}): " + ", ".join(
            f"{p.relative_to(lima_home)} = {data[:50]!r}" for p, data in changed.items())

        listed = lima("list", "--format", "json")
        _ok(listed, "list", where)
        assert listed.exit_code == 0, (where, listed.stderr)
        for path, data in changed.items():
            bad = _not_text(data)
            if path.name in CONFIG_FILES and bad:
                inst = quick_status("fz")
                assert inst["status"] == "Broken", (where, inst)
                assert any(str(path) in e and bad in e for e in inst["errors"]), (where, inst["errors"])
        for args in (["start", "fz"], ["stop", "-f", "fz"]):
            _ok(lima(*args), *args, where)
        assert no_processes_of(lima_home, timeout=5) == [], where
        deleted = lima("delete", "-f", "fz")
        _ok(deleted, "delete -f", where)
        assert deleted.exit_code == 0 and not (lima_home / "fz").exists(), (where, deleted.stderr)
    assert tried >= len(configs) + 2


# -- what a killed `lima delete` leaves ----------------------------------------------------------------


def test_an_interrupted_delete_is_reported_and_finished(lima, fake_template: Path, lima_home: Path,
                                                        instances: list[str]) -> None:
    instances.append("gone")
    lima("create", "--name", "gone", str(fake_template), ok=True)
    many = lima_home / "gone" / "many"  # enough files that the removal takes a while
    many.mkdir()
    for i in range(20000):
        (many / str(i)).write_bytes(b"x" * 512)
    proc = subprocess.Popen([sys.executable, "-m", "lima_core", "delete", "-f", "gone"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = lima_home / f".gone.deleting-{proc.pid}"
    wait_for(lambda: left.exists() or proc.poll() is not None, what="the rename")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert left.is_dir() and not (lima_home / "gone").exists()

    r = run("list")
    size = human_size(sum(p.lstat().st_blocks * 512 for p in left.rglob("*")))
    assert f"WARNING: {left} is what an interrupted `lima delete gone` left ({size}); `lima delete gone` " \
           "removes it" in r.stderr
    r = run("delete", "gone")
    assert r.returncode == 0 and f"removed {left}, left by an interrupted `lima delete gone`" in r.stderr
    assert not left.exists()
    assert "interrupted" not in run("list").stderr
    assert "nothing to delete" in run("delete", "gone").stderr


def test_an_interrupted_delete_of_a_name_in_use_again(lima, fake_template: Path, lima_home: Path,
                                                      instances: list[str]) -> None:
    """The name was reused: `lima delete NAME` would delete the new instance too, so the hint removes the rest only."""
    instances.append("again")
    left = lima_home / ".again.deleting-999999999"  # no process has that pid
    left.mkdir(parents=True)
    (left / "disk").write_bytes(b"\0" * 4096)
    lima("create", "--name", "again", str(fake_template), ok=True)
    r = run("list")
    assert f"`rm -rf {left}` removes it (`lima delete again` would also delete the instance 'again')" in r.stderr
    assert run("start", "again").returncode == 0  # the leftover is in nobody's way
    assert run("delete", "-f", "again").returncode == 0
    assert not left.exists() and not (lima_home / "again").exists()


def test_a_delete_in_progress_is_not_a_leftover(lima_home: Path) -> None:
    from lima_core import store

    (lima_home / f".busy.deleting-{os.getpid()}").mkdir()  # this process renamed it just now
    assert store.interrupted_deletes() == []


# -- modes -----------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_lima_home_and_config_are_private_whatever_the_umask(fake_template: Path, short_tmp: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home = short_tmp / "new" / "home"
    monkeypatch.setenv("LIMA_HOME", str(home))
    env = dict(os.environ)
    for args in (["create", "--name", "u", str(fake_template)], ["start", "u"], ["stop", "u"]):
        proc = subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", sys.executable, "-m", "lima_core", *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert _mode(home) == 0o700 and _mode(home / "_config") == 0o700 and _mode(home / "u") == 0o700
    assert _mode(home.parent) == 0o755  # a parent it had to make
    assert not _mode(home / "_config" / "user.pub") & 0o022 and _mode(home / "_config" / "user") == 0o600
    assert "writable by every user" not in run("list").stderr

    os.chmod(home, 0o777)
    (home / "_config" / "override.yaml").write_text("cpus: 1\n")
    os.chmod(home / "_config" / "override.yaml", 0o666)
    err = run("list").stderr
    assert f"WARNING: LIMA_HOME ({home}) is writable by every user (mode 0777)" in err
    assert f"run `chmod 700 {home}`" in err
    assert f"_config/override.yaml ({home}/_config/override.yaml) is writable by every user (mode 0666)" in err
    assert err.count("writable by every user") == 2  # once each, not once per instance or layer
    assert run("delete", "-f", "u").returncode == 0


# -- LIMA_HOME moved -------------------------------------------------------------------------------------


def test_an_instance_under_a_lima_home_moved_to_a_longer_path(lima, fake_template: Path, short_tmp: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    home = short_tmp / "h"
    monkeypatch.setenv("LIMA_HOME", str(home))
    lima("create", "--name", "mv", str(fake_template), ok=True)
    longer = short_tmp / ("x" * 80)
    home.rename(longer)  # the instance's sockets no longer fit in 108 bytes
    monkeypatch.setenv("LIMA_HOME", str(longer))
    listed, _ = _list()
    assert listed["mv"]["status"] == "Stopped"
    r = run("start", "mv")
    assert r.returncode == 1 and "unix socket path limit" in r.stderr and "`lima delete` still works" in r.stderr
    assert run("stop", "-f", "mv").returncode == 0
    assert run("delete", "-f", "mv").returncode == 0 and not (longer / "mv").exists()


# -- _config/ layers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layer", "text", "where", "field"), [
    ("override.yaml", "# applies to every instance\nssh:\n  forwardAgent: true\ncpus: many\n", 4, "cpus"),
    ("override.yaml", "images:\n- location: /x.img\n  arch: nope\n", 3, "images[0].arch"),
    ("default.yaml", "mounts:\n- location: /tmp\n  mountPoint: /etc\n", 3, "mounts[0].mountPoint"),
])
def test_a_bad_value_in_config_names_its_file(layer: str, text: str, where: int, field: str, lima,
                                              fake_template: Path, lima_home: Path) -> None:
    lima("create", "--name", "c", str(fake_template), ok=True)
    (lima_home / "_config").mkdir(exist_ok=True)
    (lima_home / "_config" / layer).write_text(text)
    said = f"{lima_home / '_config' / layer}:{where}:"
    listed, err = _list("c")
    assert listed["c"]["status"] == "Broken" and listed["c"]["errors"][0].startswith(said), listed["c"]["errors"]
    assert f": {field}: " in listed["c"]["errors"][0]
    r = run("start", "c")
    assert r.returncode == 1 and said in r.stderr and "lima.yaml" not in r.stderr.replace(said, "")
    r = run("create", "--name", "d", str(fake_template))
    assert r.returncode == 1 and said in r.stderr


def test_an_unknown_field_in_config_is_placed_in_its_file(lima, fake_template: Path, lima_home: Path) -> None:
    (lima_home / "_config").mkdir()
    (lima_home / "_config" / "default.yaml").write_text("cpus: 1\nfoo: 1\n")
    r = run("create", "--name", "w", str(fake_template))
    assert r.returncode == 0
    assert f"WARNING: {lima_home / '_config' / 'default.yaml'}:2:1: unknown field 'foo' is ignored" in r.stderr
