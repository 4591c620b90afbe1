"""``lima edit``: change an instance's lima.yaml (or a template file) with an editor or yq expressions.

The new configuration is validated before it is saved (see :mod:`lima_core.editing`); a refused
edit made in an editor is kept as ./lima.REJECTED.yaml. An instance that is running goes on with
its old configuration until it restarts: ``--start`` (or the prompt, with a terminal) restarts it.
"""

from __future__ import annotations

import typer

from ..errors import LimaError
from ._common import complete_instances, info, tty
from ._editflags import EditFlags, edit_flags, expressions


@edit_flags(create=False)
def edit(
    target: str = typer.Argument("default", help="an instance, or a template FILE.yaml",
                                 autocompletion=complete_instances),
    start_: bool = typer.Option(None, "--start/--no-start", show_default=False,
                                help="start the instance afterwards (restart it if it runs); default: ask, "
                                     "with a terminal"),
    flags: EditFlags = None,  # type: ignore[assignment]
) -> None:
    """Edit an instance of Lima or a template.

    \b
    Examples:
      lima edit default                         in $EDITOR (with a terminal)
      lima edit default --cpus=4 --memory=8     with flags
      lima edit default --set='.mounts = []'    with a yq expression
    """
    if target.endswith((".yaml", ".yml")):
        _edit_file(target, flags)
        return
    from .. import editing, instance, store
    from ..limatype import STATUS_RUNNING

    edits = expressions(flags, new_instance=False)
    store.existing_dir(target)
    if edits:
        change = editing.apply(target, edits)
    elif tty():
        change = _in_editor(target)
        if change is None:
            return
    else:
        raise LimaError("nothing to edit: give flags such as --cpus=4 or --set=EXPRESSION, or run with a terminal "
                        "(or --tty) to open an editor")
    if not change.changed:
        info("Aborting, no changes made to the instance")
        return
    editing.write(change)
    info(f"Instance {target!r} configuration edited")
    running = store.inspect(target, driver_status=False).status == STATUS_RUNNING
    if start_ is None:
        start_ = tty() and typer.confirm(f"Do you want to {'restart' if running else 'start'} the instance now?",
                                         default=True, err=True)
    if not start_:
        if running:
            info(f"The instance runs with its old configuration until it restarts (`lima restart {target}`).")
        return
    from .start import ready

    if running:
        instance.stop(target, progress=info)
    if instance.start(target, progress=info):
        ready(target)


def _in_editor(name: str):  # type: ignore[no-untyped-def]
    from .. import editing
    from ..errors import LimaError as _LimaError
    from ._editor import WARNING_HEADER, edit_text

    _path, before = editing.read(name)
    header = (f"# Please edit the following configuration for Lima instance {name!r};\n"
              "# an empty file aborts the edit.\n" + WARNING_HEADER + "\n")
    text = edit_text(before, header)
    if not text.strip():
        info("Aborting, as requested by saving the file with empty content")
        return None
    change = editing.Edit(name, before, text)
    if change.changed:
        try:
            editing.check(change)
        except _LimaError as exc:
            kept = editing.save_rejected(text)
            raise LimaError(f"the configuration is invalid, nothing was changed; your edit is kept as {kept}: "
                            f"{exc.message}") from None
    return change


def _edit_file(path: str, flags: EditFlags) -> None:
    """A template file: flags/expressions or an editor, then the same checks as `lima validate`."""
    from pathlib import Path

    from .. import limayaml, templates, yamlfile, yq
    from ._editor import edit_text

    file = Path(path)
    try:
        before = file.read_text()
    except OSError as exc:
        raise LimaError(f"cannot read {file}: {exc.strerror}") from None
    edits = expressions(flags, new_instance=False)
    if edits:
        data = yamlfile.load(before, str(file)).data
        after = yamlfile.dump(yq.apply_all(edits, data if isinstance(data, dict) else {}))
    elif tty():
        after = edit_text(before, f"# Please edit {file}; an empty file aborts the edit.\n\n")
    else:
        raise LimaError("nothing to edit: give --set=EXPRESSION or flags, or run with a terminal to open an editor")
    if not after.strip() or after == before:
        info("Aborting, no changes made")
        return
    tmpl = templates.Template(str(file), after, str(file.absolute().parent), None)
    doc = tmpl.document().data
    limayaml.from_data(templates.embed(tmpl), str(file), text=after if "base" not in doc else None, warn_unknown=True)
    file.write_text(after)
    info(f"{file} edited")
