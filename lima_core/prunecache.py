"""``lima prune``: the download cache (``<cache>/download``), whole or less what is still referred to.

An entry is referred to when an instance's lima.yaml or a template names its URL as an
image, kernel, initrd or firmware image (Lima's ``knownLocations``). Host probes cached
beside the downloads are not garbage and stay.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from . import dirnames, download, templates
from .errors import LimaError

log = logging.getLogger("lima_core")


def download_root() -> Path:
    return dirnames.cache_dir() / "download"


def entries() -> list[Path]:
    root = download_root() / "by-url-sha256"
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def _locations(data: Any) -> set[str]:
    out: set[str] = set()
    if not isinstance(data, dict):
        return out
    for image in data.get("images") or []:
        if isinstance(image, dict):
            for part in (image, image.get("kernel"), image.get("initrd")):
                if isinstance(part, dict) and isinstance(part.get("location"), str):
                    out.add(part["location"])
    firmware = data.get("firmware")
    if isinstance(firmware, dict):
        for image in firmware.get("images") or []:
            if isinstance(image, dict) and isinstance(image.get("location"), str):
                out.add(image["location"])
    return out


def known_locations() -> set[str]:
    """Every image URL an instance or a template refers to."""
    from . import filenames, yamlfile

    found: set[str] = set()
    for name in dirnames.instance_names():
        path = dirnames.instance_dir(name) / filenames.LIMA_YAML
        try:
            found |= _locations(yamlfile.load(path.read_text(), str(path)).data)
        except (OSError, UnicodeDecodeError, LimaError) as exc:
            log.warning("%s: not read (%s); the downloads it refers to may be pruned", path,
                        getattr(exc, "message", exc))
    for _name, path in templates.list_templates(include_hidden=True):
        try:
            found |= _locations(templates.embed(templates.read(str(path))))
        except LimaError as exc:
            log.debug("template %s: %s", path, exc.message)
    return found


def prune(*, keep_referred: bool) -> tuple[list[Path], list[Path]]:
    """Remove cached downloads; (removed, kept)."""
    if not keep_referred:
        removed = entries()
        if download_root().exists():
            shutil.rmtree(download_root())
        return removed, []
    keep = {download.cache_entry(url).name for url in known_locations()}
    removed, kept = [], []
    for entry in entries():
        if entry.name in keep:
            kept.append(entry)
        else:
            shutil.rmtree(entry)
            removed.append(entry)
    return removed, kept
