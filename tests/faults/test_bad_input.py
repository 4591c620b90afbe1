"""Bad input through the CLI edge: every case gives one line on stderr, exit 1, no traceback, and
changes nothing. (Hypothesis fuzzing of the same edges: test_fuzz.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import one_error_line

BAD_NAMES = [
    ("../x", "invalid instance name '../x'"),
    ("", "the instance name is empty"),
    ("a" * 200, "the limit is 76"),
    ("ünïcode", "invalid instance name"),
    ("x.yaml", "must not end in .yaml"),
    ("a b", "invalid instance name"),
    ("x$(touch pwned)", "invalid instance name"),
    ("x\n", "invalid instance name"),
]


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES, ids=[repr(n)[:12] for n, _ in BAD_NAMES])
def test_bad_names_in_every_command(lima, name: str, fragment: str, fake_template: Path, internal: Path,
                                    lima_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    one_error_line(lima("create", "--name", name, str(fake_template)), fragment)
    for args in (["stop", name], ["stop", "-f", name], ["delete", name], ["delete", "-f", name],
                 ["shell", name, "true"], ["snapshot", "list", name], ["snapshot", "create", name, "--tag", "t"],
                 ["list", name], ["start", name]):
        r = lima(*args)
        one_error_line(r)
    assert sorted(p.name for p in lima_home.iterdir() if not p.name.startswith("_")) == []
    assert list(cwd.iterdir()) == []


def _template(tmp_path: Path, body: str, name: str = "t.yaml") -> Path:
    image = tmp_path / "i.raw"
    image.write_bytes(b"x")
    path = tmp_path / name
    path.write_text(body.replace("IMAGE", str(image)))
    return path


@pytest.mark.parametrize(("body", "where", "fragment"), [
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: [\n", "5:1", "YAML syntax error"),
    ("vmType: fake\nimages:\n- location: IMAGE\n\tmounts: []\n", "4:1", "YAML syntax error"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\ncpus: 'x': y\n", "5:", "YAML syntax error"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\ncpus: many\n", "5:1", "cpus: expected an integer"),
    ("vmType: fake\nimages: 5\n", "2:1", "images: expected a list"),
    ("vmType: fake\nimages:\n- location: [IMAGE]\n", "3:3", "images[0].location: expected a string"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: {a: b}\n", "4:1", "mounts: expected a list"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\nmemory: [1]\n", "5:1", "memory: expected a string"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\nssh: {localPort: x}\n", "5:", "ssh.localPort"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\nparam: {'a;touch x': 1}\n", "", "param"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\nuser: {name: \"me\\nProxyCommand touch x\"}\n",
     "", "user.name"),
    ("vmType: fake\nimages:\n- location: IMAGE\nmounts: []\nuser: {home: relative}\n", "", "user.home"),
    ("vmType: nosuch\nimages:\n- location: IMAGE\nmounts: []\n", "", "unknown vmType 'nosuch'"),
    ("- just\n- a list\n", "", "must be a YAML mapping"),
    ("a: &a [*a]\n", "1:4", "an alias refers to the value that holds it"),
    ("base: template:../../etc/passwd\n", "", "cannot contain '..'"),
])
def test_bad_templates(lima, tmp_path: Path, body: str, where: str, fragment: str, internal: Path,
                       lima_home: Path) -> None:
    t = _template(tmp_path, body)
    line = one_error_line(lima("create", "--name", "bad", str(t)), fragment)
    if where:
        assert f"{t}:{where}" in line
    assert not (lima_home / "bad").exists()


@pytest.mark.parametrize("locator", ["template:../../etc/passwd", "template:/etc/passwd", "template:a/../../b",
                                     "template:..", "template:", "template:x\\..\\y", "template://../x"])
def test_template_paths_that_escape(lima, locator: str, lima_home: Path) -> None:
    one_error_line(lima("create", "--name", "esc", locator))
    one_error_line(lima("template", "show", locator))
    assert not (lima_home / "esc").exists()


@pytest.mark.parametrize(("expr", "fragment"), [
    (".x = &a [*a]", "not a valid expression: syntax error"),
    ("rm -rf /", "not a valid expression: syntax error"),
    (".cpus = [", "not a valid expression: syntax error"),
    (".cpus = many", "not a valid expression: many/0 is not defined"),
    ('.cpus = "many"', "cpus: expected an integer"),
    ("env.HOME", "`env` is not allowed"),
])
def test_bad_set_expressions(lima, expr: str, fragment: str, fake_template: Path, internal: Path,
                             lima_home: Path) -> None:
    one_error_line(lima("create", "--name", "s", "--set", expr, str(fake_template)), fragment)
    assert not (lima_home / "s").exists()


def test_broken_lima_yaml_of_an_instance(lima, fake_template: Path, internal: Path, lima_home: Path) -> None:
    """An instance whose lima.yaml was broken by hand: each command says where, none deletes it."""
    lima("create", "--name", "hand", str(fake_template), ok=True)
    path = lima_home / "hand" / "lima.yaml"
    good = path.read_text()
    path.write_text(good + "cpus: [\n")
    for args in (["start", "hand"], ["shell", "hand", "true"], ["delete", "hand"]):
        one_error_line(lima(*args), f"{path}:")
    r = lima("list", "--format", "json", "hand", ok=True)
    assert '"status": "Broken"' in r.stdout and f"{path}:" in r.stdout
    assert path.read_text() == good + "cpus: [\n" and (lima_home / "hand" / "disk").exists()
    path.write_text(good)
    lima("snapshot", "list", "hand", ok=True)


def test_unknown_options_and_values(lima) -> None:
    for args in (["start", "--timeout", "soon", "x"], ["list", "--format", "xml"]):
        one_error_line(lima(*args))


def test_shell_leading_assignments(lima, internal: Path, fake_template: Path, fake_ssh: Path,
                                   instances: list[str], leftovers) -> None:
    """`lima shell NAME -- FOO=bar env` (issue 21): leading VAR=value words are assignments, as in Lima,
    not a command named FOO=bar."""
    instances.append("sh1")
    lima("start", "--name", "sh1", str(fake_template), ok=True)
    r = lima("shell", "sh1", "--", "FOO=bar", "BAZ=two words", "env", ok=True)
    assert "FOO=bar" in r.stdout.splitlines() and "BAZ=two words" in r.stdout.splitlines()
    r = lima("shell", "sh1", "echo", "FOO=bar", ok=True)
    assert r.stdout.strip() == "FOO=bar"
    lima("stop", "sh1", ok=True)
    assert leftovers() == []
