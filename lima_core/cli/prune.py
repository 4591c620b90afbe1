"""``lima prune``: remove lima's download cache (the images instances were made from)."""

from __future__ import annotations

import typer

from ._common import info


def prune(keep_referred: bool = typer.Option(False, "--keep-referred",
                                             help="keep the downloads an instance or a template refers to")) -> None:
    """Prune garbage objects: lima's download cache."""
    from .. import prunecache

    removed, kept = prunecache.prune(keep_referred=keep_referred)
    info(f"Pruned {len(removed)} cached download(s)" + (f"; kept {len(kept)} that are referred to" if keep_referred
                                                        else ""))
