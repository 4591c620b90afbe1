"""The host agent's requirements: what each runs, how it is retried, and what a failure says."""

from __future__ import annotations

from pathlib import Path

import pytest

from lima_core.hostagent import requirements
from lima_core.hostagent.requirements import Outcome, Requirement, Runner
from lima_core.testing.conformance import new_instance
from lima_core.users import GuestUser

USER = GuestUser(name="u", uid=1000, home="/home/u.guest", shell="/bin/bash", comment="")


class Scripted(Runner):
    """A Runner whose attempts follow a script of outcomes per requirement."""

    def __init__(self, outcomes: dict[str, list[Outcome]]) -> None:
        self.said: list[tuple[str, dict]] = []
        super().__init__(Path("/nonexistent"), "x", "127.0.0.1", 22, lambda: False,
                         lambda message="", **fields: self.said.append((message, fields)))
        self.outcomes = outcomes
        self.attempts: list[str] = []

    def attempt(self, req: Requirement) -> Outcome:
        self.attempts.append(req.description)
        left = self.outcomes[req.description]
        return left.pop(0) if len(left) > 1 else left[0]


def req(description: str, **kw) -> Requirement:
    return Requirement(description, "#!/bin/sh\ntrue\n", kw.pop("hint", "the hint"), interval=0.001, **kw)


def test_retried_until_it_holds_and_each_new_error_is_said_once() -> None:
    r = Scripted({"a": [Outcome(False, "not yet"), Outcome(False, "not yet"), Outcome(False, "almost"),
                        Outcome(True)]})
    assert r.run_group("essential", [req("a")]) == []
    assert r.attempts == ["a"] * 4
    assert r.said[0] == ("Waiting for the essential requirement 1 of 1: 'a'", {"waiting_for": "a"})
    assert [f.get("last_error") for _, f in r.said[1:]] == ["not yet", "almost"]


def test_a_failure_names_the_requirement_its_hint_and_last_output() -> None:
    r = Scripted({"probe one": [Outcome(False, "line 1\nline 2\nno docker")], "b": [Outcome(True)]})
    errors = r.run_group("optional", [req("probe one", hint="docker is not up"), req("b")], timeout=0.01)
    assert errors == ["failed to satisfy the optional requirement 1 of 2 'probe one': docker is not up: "
                      "line 1 | line 2 | no docker"]
    assert "b" in r.attempts  # a non-fatal failure does not stop the group


def test_a_fatal_requirement_is_tried_once_and_ends_its_group() -> None:
    r = Scripted({"systemd": [Outcome(False, "systemctl is not found")], "after": [Outcome(True)]})
    errors = r.run_group("optional", [req("systemd", fatal=True), req("after")], timeout=60)
    assert r.attempts == ["systemd"] and len(errors) == 1


def test_stopping_ends_the_wait_without_an_error() -> None:
    r = Scripted({"a": [Outcome(False, "no")]})
    r.stopping = lambda: True
    assert r.run_group("final", [req("a")]) == []


def test_probes_get_param_env_and_run_under_their_interpreter(tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "p", "fake", {"param": {"K": "v"}, "probes": [
        {"script": "#!/bin/bash -eu\necho {{.User}} $PARAM_K\n", "description": "mine", "hint": "look"}]})
    (probe,) = requirements.optional(inst, USER)
    assert probe.script == "#!/bin/bash -eu\necho u $PARAM_K\n" and probe.params and probe.hint == "look"
    command = requirements.remote_command(probe)
    assert command.startswith("/bin/sh -c ") and "sudo -n cat /mnt/lima-cidata/param.env" in command
    assert command.rstrip("'").endswith("exec /bin/bash -eu\n")


@pytest.mark.parametrize(("plain", "os", "wanted"), [
    (False, "Linux", ["ssh", "user session is ready for ssh", "Explicitly start ssh ControlMaster"]),
    (True, "Linux", ["ssh", "Explicitly start ssh ControlMaster"]),
])
def test_the_essential_requirements_are_limas(plain: bool, os: str, wanted: list[str], tmp_path: Path) -> None:
    inst = new_instance(tmp_path / "e", "fake", {"plain": plain, "os": os})
    got = requirements.essential(inst, "iid-1")
    assert [r.description for r in got] == wanted
    assert got[0].no_master and got[0].banner and not got[-1].no_master
