"""``lima info``: what this lima knows, as JSON (the shape of ``limactl info``)."""

from __future__ import annotations

import json
import platform
import sys

import typer

from ..errors import LimaError


def info(yq_: str = typer.Option(None, "--yq", help="apply a yq expression to the output, e.g. '.vmTypes'")) -> None:
    """Show diagnostic information (version, drivers, templates, LIMA_HOME) as JSON."""
    from .. import __version__, dirnames, filenames, limayaml, registry, templates
    from ..limatype import host_arch

    reg = registry.discover()
    if not reg.drivers:
        raise LimaError("no VM driver is installed; run `pip install lima-driver-qemu`")
    default = None
    try:
        default = limayaml.from_data(templates.embed(templates.read("template:default")), "template:default").to_json()
    except LimaError as exc:
        default = {"error": exc.message}
    out = {
        "version": __version__,
        "templates": [{"name": n, "location": str(p)} for n, p in templates.list_templates()],
        "defaultTemplate": default,
        "limaHome": str(dirnames.lima_home()),
        "vmTypes": reg.names(),
        "vmTypesEx": {n: {"location": e.location} for n, e in sorted(reg.drivers.items())},
        "hostOS": {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform, sys.platform),
        "hostArch": host_arch(),
        "identityFile": str(dirnames.config_dir() / filenames.USER_KEY),
        "libexecPaths": [str(p) for p in registry.libexec_dirs()],
        "python": platform.python_version(),
    }
    if yq_ is None:
        print(json.dumps(out, indent=2))
        return
    from .. import yq

    for value in yq.evaluate(yq_, [out], "--yq")[0]:
        print(value if isinstance(value, str) else json.dumps(value, indent=2))
