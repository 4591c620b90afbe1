"""Checking a driver as it will be published: its wheel, installed alone in a fresh virtualenv.

An editable install (``pip install -e``) reads the project's checkout, so a
file the driver needs at run time but that the wheel lacks goes unnoticed
until a user installs the published driver. The generated project's
``tests/test_publish.py`` builds the sdist and the wheel, installs the wheel
into a new virtualenv with :func:`fresh_venv` and :func:`install`, and runs
the conformance kit there with :func:`run_kit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from importlib import metadata
from pathlib import Path

#: environment variables a child Python must not inherit: they would import from elsewhere
_LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
          "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST", "PYTEST_VERSION")


def lima_core_requirement() -> str:
    """What ``pip install`` takes to get the lima-core running here: the wheel or directory it was
    installed from, or ``lima-core==<version>`` when it came from an index."""
    dist = metadata.distribution("lima-core")
    text = dist.read_text("direct_url.json")
    if text:
        try:
            url = json.loads(text).get("url", "")
        except ValueError:
            url = ""
        if url.startswith("file://"):
            from urllib.parse import unquote, urlparse

            path = unquote(urlparse(url).path)
            if os.path.exists(path):
                return path
    return f"lima-core=={dist.version}"


def clean_env(python: Path, **extra: str) -> dict[str, str]:
    """This process's environment, for running *python* (a virtualenv's) as a user would."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(args: list[str | os.PathLike[str]], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run *args*; AssertionError with its output if it fails."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"`{' '.join(map(str, args))}` exited with status {proc.returncode}:\n"
                             f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def fresh_venv(path: Path) -> Path:
    """A new virtualenv at *path*, with pip and nothing else; its Python."""
    venv.create(path, with_pip=True, clear=True)
    return path / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")


def install(python: Path, *requirements: str | os.PathLike[str], cwd: Path) -> None:
    """``pip install`` *requirements* into *python*'s virtualenv, from *cwd* (not the project)."""
    run([python, "-m", "pip", "install", "-q", *requirements], cwd=cwd, env=clean_env(python))


def run_kit(python: Path, driver: str, cwd: Path, *options: str,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``pytest --lima-driver DRIVER OPTIONS`` with *python*, from *cwd* (an empty directory); not checked."""
    args = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--lima-driver", driver, *options]
    return subprocess.run(args, cwd=cwd, env=clean_env(python), capture_output=True, text=True, timeout=timeout)
