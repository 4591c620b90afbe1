"""``lima clone`` and ``lima rename``, with Lima's edit flags for the result."""

from __future__ import annotations

import typer

from ._common import complete_instances, info, tty
from ._editflags import EditFlags, edit_flags, expressions


def _clone_or_rename(old: str, new: str, start_: bool | None, flags: EditFlags, *, rename: bool) -> None:
    from .. import clone, editing, instance
    from ..errors import LimaError

    edits = expressions(flags, new_instance=False)
    if edits:
        editing.apply(old, [])  # the old lima.yaml must be readable before anything moves
    clone.clone_or_rename(old, new, rename=rename)
    info(f"Instance {old!r} {'renamed' if rename else 'cloned'} to {new!r}")
    if edits:
        try:
            edit = editing.apply(new, edits)
        except LimaError:
            if not rename:
                import shutil

                from .. import store

                shutil.rmtree(store.existing_dir(new), ignore_errors=True)
                info(f"The clone {new!r} was removed: its edited configuration was refused.")
            raise
        if edit.changed:
            editing.write(edit)
            info(f"Instance {new!r} configuration edited")
    if start_ is None:
        start_ = tty() and typer.confirm("Do you want to start the instance now?", default=True, err=True)
    if start_:
        from .start import ready

        if instance.start(new, progress=info):
            ready(new)


@edit_flags(create=False)
def clone(old: str = typer.Argument(..., help="the instance to clone", autocompletion=complete_instances),
          new: str = typer.Argument(..., help="the new instance's name"),
          start_: bool = typer.Option(None, "--start/--no-start", show_default=False,
                                      help="start the clone (default: ask, with a terminal)"),
          flags: EditFlags = None) -> None:  # type: ignore[assignment]
    """Clone a stopped instance of Lima (its disk is copied; not to be confused with `lima copy`)."""
    _clone_or_rename(old, new, start_, flags, rename=False)


@edit_flags(create=False)
def rename(old: str = typer.Argument(..., help="the instance to rename", autocompletion=complete_instances),
           new: str = typer.Argument(..., help="its new name"),
           start_: bool = typer.Option(None, "--start/--no-start", show_default=False,
                                       help="start it afterwards (default: ask, with a terminal)"),
           flags: EditFlags = None) -> None:  # type: ignore[assignment]
    """Rename a stopped instance of Lima."""
    _clone_or_rename(old, new, start_, flags, rename=True)
