"""Fuzzing the input edges with hypothesis: the YAML loader and the instance-name check.

The only acceptable outcomes are success, or a LimaError whose message is one
line. Never another exception, never a hang (the loaders bound depth, size
and alias expansion). A few examples also go through the CLI edge: one line
on stderr, exit 1, no traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lima_core import limayaml, store, templates, yamlfile
from lima_core.errors import InvalidName, LimaError

# database=None: no .hypothesis directory in the checkout
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
CLI_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)

#: The keys a lima.yaml has, so the structured fuzz reaches the checks behind them.
TOP_KEYS = ["vmType", "vmOpts", "os", "arch", "images", "cpus", "memory", "disk", "mounts", "mountType", "ssh",
            "firmware", "video", "networks", "env", "param", "plain", "user", "base", "message", "audio",
            "cpuType", "additionalDisks", "provision", "portForwards"]
SUB_KEYS = ["location", "arch", "digest", "kernel", "initrd", "cmdline", "mountPoint", "writable", "localPort",
            "legacyBIOS", "display", "vnc", "name", "uid", "home", "shell", "lima", "interface", "9p", "fake"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["x86_64", "aarch64", "qemu", "fake", "4GiB", "0", "-1", "/abs", "~/x", "..",
                                     "template:default", "reverse-sshfs", "9p", "vnc", "Linux"]))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(SUB_KEYS), st.text(max_size=8)), children, max_size=4)),
    max_leaves=12)
lima_yamls = st.dictionaries(st.one_of(st.sampled_from(TOP_KEYS), st.text(max_size=10)), values, max_size=8)

#: YAML-flavoured text: fragments that exercise the syntax (anchors, tags, flow, block scalars) mixed with noise.
yaml_tokens = st.sampled_from(["vmType: ", "images:", "\n- location: ", "\n  ", "\n", ": ", "- ", "[", "]", "{", "}",
                               ",", "&a ", "*a", "<<: *a", "!!str ", "!!binary ", "!!python/object ", "|", ">-",
                               "'", '"', "#", "---", "...", "%YAML 1.1\n", "? ", "\t", "cpus: ", "memory: ",
                               "2001-13-45", "0x", "1e999", ".inf", "~", "\\", "\x00", "\ufeff", "é"])
yaml_texts = st.one_of(st.text(max_size=200), st.lists(st.one_of(yaml_tokens, st.text(max_size=6)),
                                                      max_size=40).map("".join))


def one_line(exc: LimaError) -> None:
    message = exc.message
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message


def _as_template(text: str) -> None:
    """What `lima create FILE` does with a template: embed (base:, relative locations), then load."""
    tmpl = templates.Template("fuzz.yaml", text, "/nonexistent-dir", "fuzz")
    limayaml.from_data(templates.embed(tmpl), "fuzz.yaml", text=text, warn_unknown=True)


@FUZZ
@given(yaml_texts)
@example("base: [{url: [x]}]\nmounts: [{location: [1]}]\n")
@example("1:")
def test_yaml_loader_on_arbitrary_text(text: str) -> None:
    for load in (lambda: limayaml.load_text(text, "fuzz.yaml", warn_unknown=True),
                 lambda: yamlfile.load(text, "fuzz.yaml"), lambda: _as_template(text)):
        try:
            load()
        except LimaError as exc:
            one_line(exc)


@FUZZ
@given(lima_yamls)
# What the fuzzing found once, kept so that it is tried on every run:
@example({"mounts": [{"location": []}]})
@example({"mounts": [None]})
@example({"images": [None]})
@example({"cpuType": {"\r": False}})
@example({"base": "\n"})
@example({"base": "\x00"})  # found by CI: open() raised ValueError, not a one-line error
def test_yaml_loader_on_structured_but_wrong_data(data: dict[str, Any]) -> None:
    try:
        limayaml.from_data(data, "fuzz.yaml")
    except LimaError as exc:
        one_line(exc)
    try:
        text = yamlfile.dump(data)
    except Exception:  # noqa: BLE001 - a value YAML cannot represent (e.g. a surrogate) is not our input
        return
    for load in (lambda: limayaml.load_text(text, "fuzz.yaml", warn_unknown=True), lambda: _as_template(text)):
        try:
            load()
        except LimaError as exc:
            one_line(exc)


#: A name that passes may be used as a directory name and in socket paths: nothing that could escape.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@FUZZ
@given(st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9._/-]{0,90}\n?", fullmatch=True)))
def test_name_check(name: str) -> None:
    try:
        store.validate_name(name)
    except InvalidName as exc:
        one_line(exc)
        return
    assert SAFE_NAME.fullmatch(name) and ".." not in name and "/" not in name and os.sep not in name, name
    assert not name.lower().endswith((".yaml", ".yml"))


@pytest.mark.parametrize("text", [
    "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
              + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]),  # billion laughs
    "images: &x\n- location: /x\n  more: *x\n",  # refers to itself
    "x: " + "[" * 5000 + "]" * 5000,  # deeper than the parser can recurse
    "a: &a {b: 1}\nc: &c {<<: [*a, *c]}\n",
    "d: 2001-13-45 10:00:00\n",
    "k: !!binary ===\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
])
def test_hostile_yaml_is_refused_quickly(text: str) -> None:
    import time

    t0 = time.monotonic()
    for load in (lambda: limayaml.load_text(text, "evil.yaml"), lambda: yamlfile.load(text, "evil.yaml")):
        try:
            load()
        except LimaError as exc:
            one_line(exc)
    assert time.monotonic() - t0 < 5


# -- through the CLI edge -------------------------------------------------------------------


def cli_error(result: Any, prefix: str = "lima: ") -> None:
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        result.exception
    if result.exit_code == 1:
        lines = result.stderr.strip().splitlines()
        assert lines and lines[-1].startswith(prefix), result.stderr


@CLI_FUZZ
@given(yaml_texts)
def test_cli_template_validate_on_arbitrary_text(lima, tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "t.yaml"
    path.write_bytes(text.encode("utf-8", "replace"))
    result = lima("template", "validate", str(path))
    cli_error(result, prefix=f"{path}: ")  # a report: one line per template, "PATH: valid" or "PATH: invalid: why"
    report = [ln for ln in result.stderr.strip().splitlines() if not ln.startswith("WARNING: ")]
    assert len(report) == 1, result.stderr


@CLI_FUZZ
@given(st.text(max_size=100).filter(lambda s: not s.startswith("-")))
def test_cli_names(lima, fake_template: Path, internal: Path, name: str) -> None:
    for args in (["create", "--name", name, str(fake_template)], ["stop", name], ["delete", name],
                 ["shell", name, "true"], ["snapshot", "list", name]):
        result = lima(*args)
        cli_error(result)
