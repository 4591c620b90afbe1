"""Opening an editor on a text (Lima's ``editutil.OpenEditor``): $LIMA_EDITOR, $VISUAL, $EDITOR, else vi."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile

from ..errors import LimaError

WARNING_HEADER = ("# WARNING: lima.yaml is validated when you save; a value lima-core refuses is reported and\n"
                  "# the file you wrote is kept as ./lima.REJECTED.yaml.\n")


def editor_command() -> list[str]:
    for var in ("LIMA_EDITOR", "VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    for fallback in ("vi", "nano"):
        path = shutil.which(fallback)
        if path:
            return [path]
    raise LimaError("no editor found: set $EDITOR (or $LIMA_EDITOR), or edit with --set EXPRESSION")


def edit_text(text: str, header: str = "") -> str:
    """*text* after the user edited it (*header*, a comment block, is shown above it and removed)."""
    with tempfile.TemporaryDirectory(prefix="lima-edit-") as tmp:
        path = os.path.join(tmp, "lima.yaml")
        with open(path, "w") as f:
            f.write(header + text)
        command = editor_command()
        try:
            code = subprocess.call([*command, path])
        except OSError as exc:
            raise LimaError(f"cannot run the editor {command[0]}: {exc.strerror}") from None
        if code != 0:
            raise LimaError(f"the editor {command[0]} exited with status {code}; nothing was changed")
        with open(path) as f:
            edited = f.read()
    return edited[len(header):] if header and edited.startswith(header) else edited
