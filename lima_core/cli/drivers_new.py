"""``lima drivers new NAME``: write a pip-installable ``lima-driver-NAME`` project.

The files come from the templates in ``lima_core/scaffold/`` (package data);
see ``lima_core/scaffold/README.txt`` for the placeholders.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import typer

from ..errors import LimaError
from ._common import info

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
TEMPLATE_SUFFIX = ".tmpl"


def names(name: str) -> dict[str, str]:
    """The placeholder values for driver *name*."""
    from .. import __version__

    if not NAME_RE.match(name):
        raise LimaError(f"invalid driver name {name!r}: use lower-case letters and digits, optionally "
                        "joined by single hyphens, starting with a letter (it becomes vmType and "
                        "lima-driver-NAME)")
    return {
        "__NAME__": name,
        "__DIST__": f"lima-driver-{name}",
        "__PACKAGE__": "lima_driver_" + name.replace("-", "_"),
        "__CLASS__": "".join(part.capitalize() for part in name.split("-")) + "Driver",
        "__LIMA_CORE_VERSION__": ".".join(__version__.split(".")[:2]),
    }


def render(name: str) -> dict[str, str]:
    """relative path -> content of every file of the project."""
    values = names(name)
    root = resources.files("lima_core") / "scaffold"
    out: dict[str, str] = {}

    def walk(node: resources.abc.Traversable, rel: tuple[str, ...]) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, (*rel, child.name))
            elif child.name.endswith(TEMPLATE_SUFFIX):
                parts = [values["__PACKAGE__"] if p == "package" else p for p in rel]
                path = "/".join([*parts, child.name[: -len(TEMPLATE_SUFFIX)]])
                out[fill(path)] = fill(child.read_text(encoding="utf-8"))

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    walk(root, ())
    return out


def write(name: str, dest: Path) -> Path:
    """Write the project into ``dest/lima-driver-NAME``; refuses to overwrite anything."""
    files = render(name)
    project = dest / names(name)["__DIST__"]
    if project.exists() and any(project.iterdir()):
        raise LimaError(f"{project} already exists and is not empty; choose another --dest")
    for rel, text in files.items():
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project


def new(
    name: str = typer.Argument(..., help="the driver name, which users write as vmType"),
    dest: Path = typer.Option(Path("."), "--dest", help="directory to create lima-driver-NAME in"),
) -> None:
    """Write a new driver project lima-driver-NAME: pip-installable, with the conformance kit as its tests."""
    from .. import registry

    project = write(name, dest)
    if any(e.name == name for e in registry.internal_entries()):
        info(f"WARNING: a driver named {name!r} is already installed; the first installed one wins")
    info(f"Wrote {project}. Next:\n"
         f"  pip install -e '{project}[test]'\n"
         f"  lima drivers list\n"
         f"  lima create --vm-type={name} --name try template:empty\n"
         f"  pytest {project}\n"
         f"  pytest --lima-driver {name}\n"
         f"Then fill in the TODOs in {project / names(name)['__PACKAGE__'] / 'driver.py'}; README.md says what.")
