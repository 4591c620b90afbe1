"""The author docs stay true: the hook reference is generated and complete, the wire contract
names every RPC, and the helper modules docs/authors.md calls public keep their names."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lima_core import hookspecs

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def test_hooks_md_is_generated_from_the_hookspecs() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "generate-hook-docs"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("hook", hookspecs.HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    doc = inspect.getdoc(fn) or ""
    assert len(doc) >= 40, f"hookspec {hook} has no contract in its docstring"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"hookspec {hook} does not document its parameter {param!r}"
    text = (DOCS / "hooks.md").read_text()
    assert f"\n## {hook}\n" in text, f"docs/hooks.md has no heading for {hook}"
    params = ", ".join(f"{p.name}: {p.annotation}" for p in inspect.signature(fn).parameters.values())
    assert f"`{hook}({params}) -> {inspect.signature(fn).return_annotation}`" in text


@pytest.mark.parametrize("model", ["Info", "DriverFeatures"])
def test_every_field_a_driver_reports_is_documented(model: str) -> None:
    """docs/hooks.md has a row per field of Info and DriverFeatures, from its :ivar in lima_core/limatype.py."""
    import dataclasses

    from lima_core import limatype

    cls = getattr(limatype, model)
    doc = inspect.getdoc(cls) or ""
    text = (DOCS / "hooks.md").read_text()
    assert f"\n## {model}\n" in text
    for field in dataclasses.fields(cls):
        if "key" not in field.metadata:
            continue  # extra: the keys the model does not know, kept as they came
        assert f":ivar {field.name}:" in doc, f"{model}.{field.name} is not documented in its docstring"
        assert f"| `{field.name}` | `{field.metadata['key']}` |" in text, f"docs/hooks.md lacks {model}.{field.name}"


def test_wire_contract_names_every_rpc() -> None:
    proto = (REPO / "proto" / "driver.proto").read_text()
    rpcs = re.findall(r"^\s*rpc (\w+)\(", proto, re.M)
    assert len(rpcs) == 20
    text = (DOCS / "wire-contract.md").read_text()
    missing = [r for r in rpcs if f"`{r}`" not in text]
    assert not missing, f"docs/wire-contract.md does not describe {missing}"
    for needle in ("--inst-dir", "--inspect-status", ".drv.sock", ".drv.pid", "driver.stderr.log",
                   "lima-error-kind", "lima-session", "16 MiB", "GetProtocolInfo"):
        assert needle in text, needle


#: What docs/authors.md promises authors, beyond lima_core's own __all__.
PUBLIC_HELPERS = {
    "lima_core.filenames": ["pid_file", "driver_socket", "driver_pid_file", "IMAGE", "DISK", "ISO", "KERNEL",
                            "KERNEL_CMDLINE", "INITRD", "CIDATA_ISO", "CIDATA_DIR", "QMP_SOCK", "SERIAL_LOG",
                            "SERIAL_SOCK", "GUEST_AGENT_SOCK", "EXTERNAL_DRIVER_STDERR_LOG"],
    "lima_core.pidfile": ["write", "read", "remove", "wait_exit", "PidStatus"],
    "lima_core.bootscripts": ["load"],
    "lima_core.processes": ["kill", "terminate", "wait_exit", "describe_exit", "log_tail", "tail"],
    "lima_core.probecache": ["ProbeCache"],
    "lima_core.atomicfile": ["write", "replacing"],
    "lima_core.mounts": ["resolve", "ResolvedMount", "mount_tag"],
    "lima_core.network": ["mac_address", "SLIRP_NETWORK", "SLIRP_GATEWAY", "SLIRP_DNS", "SLIRP_GUEST_IP"],
    "lima_core.external": ["serve", "main_for"],
    "lima_core.errors": ["LimaError", "ConfigError", "ValidationError", "DriverError", "UnsupportedOperation",
                         "HostUnsupported", "NoDisplay", "StartFailed", "SignalDenied"],
    "lima_core.testing.conformance": ["ConformanceSuite", "DriverUnderTest", "new_instance", "capability_report",
                                      "host_for"],
    "lima_core.testing.target": ["resolve", "driver_under_test"],
    "lima_core.testing.publish": ["lima_core_requirement", "fresh_venv", "install", "run_kit", "run", "clean_env"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_HELPERS))
def test_public_helpers_keep_their_names(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    text = (DOCS / "authors.md").read_text()
    assert f"`{module}`" in text, f"docs/authors.md does not list {module}"
    for name in PUBLIC_HELPERS[module]:
        assert hasattr(mod, name), f"{module}.{name} is public SDK (docs/authors.md); keep it or deprecate it"


def test_lima_core_exports_what_authors_import() -> None:
    import lima_core

    for name in ("hookimpl", "Info", "DriverFeatures", "Instance", "LimaYAML", "StartHandle", "StartEvent",
                 "errors", "serve"):
        assert name in lima_core.__all__ and getattr(lima_core, name) is not None
