"""``lima template list|show|validate|copy``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from ..errors import LimaError
from ._common import info, new_app

app = new_app("Inspect and copy templates.")


log = logging.getLogger("lima_core")


@app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="include hidden templates (names starting with _)")) -> None:
    """List the templates (template:NAME)."""
    from .. import templates

    for name, _path in templates.list_templates(include_hidden=all_):
        print(name)


@app.command("show")
def show(name: str = typer.Argument(..., help="template:NAME, NAME, a file or a URL"),
         embed: bool = typer.Option(False, "--embed", help="merge base templates in")) -> None:
    """Print a template."""
    from .. import templates, yamlfile

    locator = name if templates.is_template_locator(name) else f"template:{name}"
    tmpl = templates.read(locator)
    print(yamlfile.dump(templates.embed(tmpl)) if embed else tmpl.text, end="" if not embed else "")


@app.command("validate")
def validate(files: list[str] = typer.Argument(..., help="template files or locators"),
             fill: bool = typer.Option(False, "--fill", help="print each template with the defaults filled in")) -> None:
    """Check templates: YAML syntax, types, values; exit 1 if any is invalid.

    A valid template may still use fields lima-core does not apply: each is named in a warning
    (`lima create` refuses those it must not ignore)."""
    from .validate import check_files

    check_files(files, fill=fill)


@app.command("copy")
def copy(src: str = typer.Argument(..., help="template to copy"),
         dst: Path = typer.Argument(..., help="file to write"),
         embed: bool = typer.Option(False, "--embed", help="merge base templates in")) -> None:
    """Copy a template to a file (to edit it)."""
    from .. import templates, yamlfile

    locator = src if templates.is_template_locator(src) else f"template:{src}"
    tmpl = templates.read(locator)
    if dst.exists():
        raise LimaError(f"{dst} already exists; choose another name or remove it first")
    text = yamlfile.dump(templates.embed(tmpl)) if embed else tmpl.text
    dst.write_text(text)
    info(f"Wrote {dst}.")


@app.command("yq")
def yq_(template: str = typer.Argument(..., help="template:NAME, a file or a URL"),
        expression: str = typer.Argument(..., help="the yq expression, e.g. '.images[].location'")) -> None:
    """Query a template with a yq expression (its own YAML, base: not merged in)."""
    import json

    from .. import templates, yamlfile, yq

    locator = template if templates.is_template_locator(template) else f"template:{template}"
    for value in yq.evaluate(expression, [templates.read(locator).document().data], "expression")[0]:
        if isinstance(value, (dict, list)):
            print(yamlfile.dump(value), end="")
        else:
            print(value if isinstance(value, str) else json.dumps(value))
