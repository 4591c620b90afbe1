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
def validate(files: list[str] = typer.Argument(..., help="template files or locators")) -> None:
    """Check templates: YAML syntax, types, values; exit 1 if any is invalid.

    A valid template may still use fields lima-core does not apply: each is named in a warning
    (`lima create` refuses those it must not ignore)."""
    from .. import fields, limayaml, templates

    failed = 0
    for locator in files:
        try:
            tmpl = templates.read(locator)
            data = templates.embed(tmpl)
            cfg = limayaml.from_data(data, tmpl.locator,
                                     text=tmpl.text if "base" not in tmpl.document().data else None, warn_unknown=True)
            for finding in fields.check(cfg, cfg.vm_type or ""):
                log.warning("%s: %s%s", locator, finding.message, " (`lima create` refuses it)" if finding.error else "")
        except LimaError as exc:
            info(f"{locator}: invalid: {exc.message}")
            failed += 1
            continue
        info(f"{locator}: valid")
    if failed:
        raise typer.Exit(1)


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
