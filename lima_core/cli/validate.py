"""``lima validate``: check template files (``lima template validate`` is the same)."""

from __future__ import annotations

import logging

import typer

from ..errors import LimaError
from ._common import info

log = logging.getLogger("lima_core")


def validate(files: list[str] = typer.Argument(..., help="template files or locators (template:NAME, URLs)"),
             fill: bool = typer.Option(False, "--fill", help="print each template with the defaults filled in")) -> None:
    """Validate YAML files: syntax, types, values; exit 1 if any is invalid.

    A valid template may still use fields lima-core does not apply: each is named in a warning
    (`lima create` refuses those it must not ignore)."""
    check_files(files, fill=fill)


def check_files(files: list[str], *, fill: bool = False) -> None:
    from .. import fields, limayaml, templates, yamlfile

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
        if fill:
            print("---\n" + yamlfile.dump(cfg.to_json()), end="")
    if failed:
        raise typer.Exit(1)
