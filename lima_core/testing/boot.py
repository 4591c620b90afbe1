"""The kit's boot check: a template booted to READY through the code ``lima create`` and ``lima start`` run.

:func:`boot_to_ready` creates an instance of the template with ``vmType``
set to the driver, starts it as ``lima start`` does (a host agent process
that boots the VM and waits for SSH and the guest's boot-done marker), then
stops it gracefully and deletes it. All of it happens in a scratch
``LIMA_HOME``, with the environment set so that ``lima`` picks the driver the
kit checks (the internal one, or the executable it found).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ..errors import LimaError

#: the instance the check creates (short: unix socket paths in its directory are limited)
INSTANCE = "kit"
#: what the summary says when no template was given
NO_TEMPLATE = ("not checked: booting to READY (SSH and boot-done, as `lima start` waits for them) needs a "
               "template with a guest the driver can boot: --lima-driver-template FILE")


@contextlib.contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the duration; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line[:240]}" for line in text[-lines:])


def _logs(inst_dir: Path) -> str:
    """The last lines of the host agent's and the external driver's logs, for the failure message."""
    from .. import filenames

    parts = []
    for name in (filenames.HOST_AGENT_STDERR_LOG, filenames.EXTERNAL_DRIVER_STDERR_LOG):
        tail = _tail(inst_dir / name)
        if tail:
            parts.append(f"  {name}:\n{tail}")
    return ("\n" + "\n".join(parts)) if parts else ""


def boot_to_ready(name: str, template: str, lima_env: Mapping[str, str | None], timeout: float,
                  expect_location: str | None = None) -> None:
    """Boot *template* with driver *name* to READY, stop it gracefully, delete it; pytest.fail says what broke.

    *expect_location* is the external executable ``lima`` must pick (None: the internal driver).
    """
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not checked: booting to READY needs OpenSSH's {' and '.join(missing)} on PATH "
                    "(the host agent reaches the guest with it)")
    from .. import events, filenames, instance, registry
    from ..cli.create import load_template

    with tempfile.TemporaryDirectory(prefix="lkh-", dir="/tmp" if os.path.isdir("/tmp") else None) as home, \
            environment({**lima_env, "LIMA_HOME": home}):
        entry = registry.discover().get(name)
        wanted = "internal" if expect_location is None else expect_location
        if entry.location != wanted:
            pytest.fail(f"lima would not use the driver under test: with {dict(lima_env)} it picks {entry.location} "
                        f"({entry.source}), not {wanted}")
        try:
            _, data, source, text = load_template(template, name=INSTANCE, vm_type=name, sets=[], cpus=None,
                                                  memory=None, disk=None)
            instance.create(INSTANCE, data, source, text=text)
        except LimaError as exc:
            pytest.fail(f"`lima create --vm-type={name} {template}` failed: {exc.message}")
        inst_dir = Path(home) / INSTANCE
        said: list[str] = []
        try:
            started = time.monotonic()
            try:
                instance.start(INSTANCE, timeout=timeout, progress=said.append)
            except LimaError as exc:
                if time.monotonic() - started >= timeout:  # the host agent was still waiting
                    last = f" (the host agent's last word: {said[-1]!r})" if said else ""
                    pytest.fail(f"did not boot to READY within {timeout:g} s{last}{_logs(inst_dir)}")
                pytest.fail(f"did not boot to READY: {exc.message}{_logs(inst_dir)}")
            ready = events.last(inst_dir / filenames.HOST_AGENT_STDOUT_LOG)
            if ready is not None and ready.degraded:
                pytest.fail(f"did not boot to READY: the host agent gave up waiting: {'; '.join(ready.errors)}"
                            f"{_logs(inst_dir)}")
            try:
                stopped = instance.stop(INSTANCE)
            except LimaError as exc:
                pytest.fail(f"booted to READY, but did not stop gracefully: {exc.message}{_logs(inst_dir)}")
            if not stopped:
                pytest.fail(f"booted to READY, but `lima stop` found it not running{_logs(inst_dir)}")
        finally:
            with contextlib.suppress(LimaError, OSError):
                instance.delete(INSTANCE, force=True)
