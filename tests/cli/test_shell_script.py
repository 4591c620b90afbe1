"""``lima shell``'s remote script, as limactl builds it: the directory, the shell, the environment, and
leading VAR=value words that stay assignments."""

from __future__ import annotations

import subprocess

import pytest

from lima_core.cli import shell as shell_cmd

MOUNTS = [("/Users/me", "/Users/me"), ("/data", "/mnt/data")]


def script(command: list[str], **kw: object) -> str:
    args: dict[str, object] = {"workdir": None, "shell": None, "env": [], "mounts": MOUNTS, "cwd": "/Users/me/src",
                               "home": "/Users/me"}
    args.update(kw)
    return shell_cmd.remote_script(command, **args)  # type: ignore[arg-type]


def test_the_host_directory_through_the_mounts_else_home() -> None:
    assert script([]).startswith("cd /Users/me/src 2>/dev/null || cd /Users/me 2>/dev/null ; exec \"$SHELL\" --login")
    # a mount whose mountPoint differs: the guest's path
    assert script([], cwd="/data/x/y").startswith("cd /mnt/data/x/y 2>/dev/null || cd /Users/me 2>/dev/null ;")
    # not under any mount, and the home not mounted: the guest's home (where ssh starts)
    assert script([], cwd="/srv", mounts=[]).startswith(": ; exec")
    assert script([], cwd=None, mounts=[("/Users/me", "/Users/me")]).startswith("cd /Users/me 2>/dev/null ;")


def test_workdir_must_exist_and_shell_is_chosen() -> None:
    s = script(["ls"], workdir="/tmp/a b", shell="/bin/zsh")
    assert s == "cd '/tmp/a b' || exit 1 ; exec /bin/zsh --login -c ls"


@pytest.mark.parametrize(("words", "expected"), [
    (["FOO=bar", "env"], "FOO=bar env"),
    (["A=1", "B=two words", "sh", "-c", "echo $A $B"], "A=1 B='two words' sh -c 'echo $A $B'"),
    (["echo", "X=1"], "echo X=1"),  # only leading words are assignments
    (["--opt=1"], "--opt=1"),  # not a variable name: an ordinary (quoted) word
    (["a b=c", "true"], "'a b=c' true"),
])
def test_leading_assignments(words: list[str], expected: str) -> None:
    s = script(words, cwd=None, mounts=[])
    assert s.endswith(" -c " + __import__("shlex").quote(expected))


def test_the_command_runs_as_written_in_a_real_shell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The script through sh, as the guest's login shell runs it: assignments apply, quoting holds."""
    s = script(["FOO=a b", "sh", "-c", 'printf "%s|" "$FOO" "$0" "$1"', "x y", "$HOME"], cwd=None, mounts=[],
               shell="/bin/sh").replace(" --login", "")
    out = subprocess.run(["sh", "-c", s], capture_output=True, text=True, cwd=tmp_path).stdout
    assert out == "a b|x y|$HOME|"


def test_preserve_env_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.environ", {"PATH": "/bin", "HOME": "/h", "MY_VAR": "1", "SSH_AUTH_SOCK": "/s",
                                       "XDG_X": "x", "OTHER": "2"})
    assert shell_cmd._environment() == ["MY_VAR=1", "OTHER=2"]
    monkeypatch.setitem(__import__("os").environ, "LIMA_SHELLENV_BLOCK", "+OTHER,LIMA_*")
    assert shell_cmd._environment() == ["MY_VAR=1"]
    monkeypatch.setitem(__import__("os").environ, "LIMA_SHELLENV_ALLOW", "MY_*,PATH")
    assert shell_cmd._environment() == ["MY_VAR=1", "PATH=/bin"]
    s = script(["env"], env=["MY_VAR=1"], cwd=None, mounts=[])
    assert "exec env MY_VAR=1 \"$SHELL\" --login -c env" in s
