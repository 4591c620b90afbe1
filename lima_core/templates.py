"""Templates: finding them, reading them, and flattening ``base:`` into one document.

Locators, as Lima takes them: ``template:NAME`` (``template://NAME`` works
with a deprecation warning), ``file:///abs/path``, ``http(s)://...`` (at
most 4 MiB), ``-`` (stdin) and a plain file path. ``template:`` names are
looked up in ``$LIMA_TEMPLATES_PATH`` when set, else ``$LIMA_HOME/_templates``
and then the templates shipped with lima-core; they may not contain ``..``.

Relative locations inside a local template (``base:``, ``images[].location``,
kernel, initrd, firmware images) are relative to the template's directory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import dirnames, filenames, textfile, yamlfile
from .errors import ConfigError, CorruptFile, TemplateError

log = logging.getLogger("lima_core")

BUILTIN_DIR = Path(__file__).parent / "templates"
TEMPLATES_PATH_ENV = "LIMA_TEMPLATES_PATH"
MAX_REMOTE_BYTES = 4 << 20
MAX_BASE_DEPTH = 16


@dataclasses.dataclass
class Template:
    """One template as read, before ``base:`` is flattened."""

    locator: str
    text: str
    #: where relative locations point: a directory path or a URL ending in "/"
    base_dir: str | None
    #: the instance name this template suggests ("ubuntu" for template:ubuntu)
    name: str | None

    def document(self) -> yamlfile.Document:
        return yamlfile.load(self.text, self.locator)


def search_path() -> list[Path]:
    env = os.environ.get(TEMPLATES_PATH_ENV)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [dirnames.lima_home() / filenames.TEMPLATES_DIR, BUILTIN_DIR]


def _template_file(name: str) -> str:
    if not name or ".." in name.split("/") or name.startswith("/") or "\\" in name:
        raise TemplateError(f"invalid template name {name!r}: names are relative to the template "
                            "directories and cannot contain '..'; run `lima template list`")
    ext = os.path.splitext(name)[1]
    if not ext or ext[1:2].isdigit():
        name += ".yaml"
    return name


def find(name: str) -> Path:
    """The file for ``template:<name>``."""
    fname = _template_file(name)
    for directory in search_path():
        path = directory / fname
        if path.is_file():
            return path
    raise TemplateError(f"template {name!r} not found in {', '.join(map(str, search_path()))}; "
                        "run `lima template list`")


def list_templates(include_hidden: bool = False) -> list[tuple[str, Path]]:
    """(name, path) of every template, first occurrence of a name wins."""
    seen: dict[str, Path] = {}
    for directory in search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*.yaml")):
            name = path.relative_to(directory).with_suffix("").as_posix()
            if not include_hidden and any(part.startswith("_") for part in name.split("/")):
                continue
            seen.setdefault(name, path)
    return sorted(seen.items())


def is_template_locator(arg: str) -> bool:
    return arg.startswith(("template:", "file://", "http://", "https://")) or arg == "-" or \
        arg.endswith((".yaml", ".yml")) or os.sep in arg


def read(locator: str, stdin: Any = None) -> Template:
    """Read the template at *locator*."""
    if "\0" in locator:  # no path or URL holds one; open() would raise ValueError
        raise TemplateError(f"template locator {locator!r} contains a NUL character")
    if locator.startswith("template://"):
        log.warning("template locator %r should be written template:%s (since Lima v2.0)",
                    locator, locator[len("template://"):])
        locator = "template:" + locator[len("template://"):]
    if locator.startswith("template:"):
        name = locator[len("template:"):]
        path = find(name)
        return Template(locator, _read_file(path), str(path.parent), os.path.basename(name))
    if locator == "-":
        text = (stdin or sys.stdin).read()
        return Template("<stdin>", text, os.getcwd(), None)
    if locator.startswith(("http://", "https://")):
        return Template(locator, _fetch(locator), locator.rsplit("/", 1)[0] + "/", _name_of(locator))
    if locator.startswith("file://"):
        locator = urllib.parse.urlparse(locator).path
    path = Path(locator).expanduser()
    return Template(str(path), _read_file(path), str(path.absolute().parent), _name_of(path.name))


def _name_of(filename: str) -> str:
    base = os.path.basename(urllib.parse.urlparse(filename).path)
    return re.sub(r"\.ya?ml$", "", base, flags=re.IGNORECASE).lower() or "default"


def _read_file(path: Path) -> str:
    try:
        return textfile.read(path)
    except FileNotFoundError:
        raise TemplateError(f"template file {path} does not exist") from None
    except IsADirectoryError:
        raise TemplateError(f"template {path} is a directory, not a YAML file") from None
    except CorruptFile as exc:
        raise TemplateError(f"template {exc.message}") from None
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - http(s) only, checked above
            data = resp.read(MAX_REMOTE_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise TemplateError(f"cannot download template {url}: {getattr(exc, 'reason', exc)}") from None
    if len(data) > MAX_REMOTE_BYTES:
        raise TemplateError(f"template {url} is larger than 4 MiB")
    return data.decode("utf-8", errors="replace")


# -- relative locations and base: ----------------------------------------------------------

_LOCATION_FIELDS = ("location",)


def absolutize(data: dict[str, Any], base_dir: str | None) -> dict[str, Any]:
    """Resolve relative ``base:`` entries and image/kernel/initrd/firmware locations."""
    if base_dir is None:
        return data

    def fix(loc: Any) -> Any:
        if not isinstance(loc, str) or not loc or _is_absolute(loc):
            return loc
        if loc.startswith("~"):
            return os.path.expanduser(loc)
        if base_dir.startswith(("http://", "https://")):
            return urllib.parse.urljoin(base_dir, loc)
        return os.path.normpath(os.path.join(base_dir, loc))

    base = data.get("base")
    if isinstance(base, str):
        data["base"] = fix(base)
    elif isinstance(base, list):
        data["base"] = [fix(b) if isinstance(b, str) else {**b, "url": fix(b.get("url"))} if isinstance(b, dict) else b
                        for b in base]
    images = data.get("images")
    for image in images if isinstance(images, list) else []:  # a wrong type is reported by validation
        if isinstance(image, dict):
            image["location"] = fix(image.get("location"))
            for sub in ("kernel", "initrd"):
                if isinstance(image.get(sub), dict):
                    image[sub]["location"] = fix(image[sub].get("location"))
    firmware = data.get("firmware")
    if isinstance(firmware, dict) and isinstance(firmware.get("images"), list):
        for image in firmware["images"]:
            if isinstance(image, dict):
                image["location"] = fix(image.get("location"))
    return data


def _is_absolute(loc: str) -> bool:
    return loc.startswith(("/", "template:", "http://", "https://", "file://", "github:")) or \
        re.match(r"^[A-Za-z]:[\\/]", loc) is not None


def embed(template: Template, depth: int = 0, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The template with every ``base:`` merged in (Lima's Embed), as plain data."""
    if depth > MAX_BASE_DEPTH:
        raise TemplateError(f"{template.locator}: base templates nest more than {MAX_BASE_DEPTH} deep")
    doc = template.document()
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"{template.locator}: a template must be a YAML mapping")
    data = absolutize(data, template.base_dir)
    bases = data.pop("base", None)
    if bases is None:
        return data
    if isinstance(bases, (str, dict)):
        bases = [bases]
    if not isinstance(bases, list):
        raise ConfigError(f"{doc.where('base')}: base: expected a locator or a list of locators")
    merged = data
    for entry in bases:
        locator = entry.get("url") if isinstance(entry, dict) else entry
        if not isinstance(locator, str):
            raise ConfigError(f"{doc.where('base')}: base: expected a locator, got {entry!r}")
        if locator in seen or locator == template.locator:
            raise TemplateError(f"{template.locator}: base template {locator} includes itself")
        base = embed(read(locator), depth + 1, seen + (template.locator,))
        merged = merge_base(merged, base)
    return merged


# Lists merged by a key: the template's entry wins over a base entry with the same key.
_KEYED_LISTS = {"mounts": "mountPoint", "networks": "interface", "additionalDisks": "name"}
# Lists whose base entries run first (set-up steps).
_BASE_FIRST_LISTS = ("provision", "probes")


def merge_base(top: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """*top* over *base*: scalars from top, maps merged, lists concatenated (see module doc)."""
    out = dict(base)
    for key, value in top.items():
        if key not in base or value is None:
            out[key] = value if value is not None else base.get(key)
            continue
        below = base[key]
        if isinstance(value, dict) and isinstance(below, dict):
            out[key] = merge_base(value, below)
        elif isinstance(value, list) and isinstance(below, list):
            if key in _KEYED_LISTS:
                out[key] = _merge_keyed(value, below, _KEYED_LISTS[key])
            elif key in _BASE_FIRST_LISTS:
                out[key] = below + value
            else:
                out[key] = value + below
        else:
            out[key] = value
    return out


def _merge_keyed(top: list[Any], base: list[Any], field: str) -> list[Any]:
    def key_of(item: Any) -> Any:
        if not isinstance(item, dict):
            return None
        key = item.get(field) or (item.get("location") if field == "mountPoint" else None)
        return key if isinstance(key, (str, int, float, bool)) else None  # a wrong type: validation says so

    top_keys = {key_of(i) for i in top} - {None}
    return list(top) + [i for i in base if key_of(i) is None or key_of(i) not in top_keys]
