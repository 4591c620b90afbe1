"""Changing an existing instance's lima.yaml: ``lima edit``, ``lima start --cpus 4 NAME``, ``clone --set``.

A new lima.yaml is checked as ``lima create`` checks a template (YAML, types, values, the
fields lima-core refuses, the driver's ``validate``) and against the one it replaces
(Lima's ``ValidateAgainstLatestConfig``: a disk does not shrink; lima-core also keeps the
``vmType`` and ``arch`` an instance's disk was made for). Only then is it written, in
one step: a refused edit leaves the instance as it was.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from . import atomicfile, fields, filenames, limayaml, registry, store, yamlfile, yq
from .errors import ConfigError, LimaError
from .limatype import STATUS_RUNNING, LimaYAML
from .units import parse_size

log = logging.getLogger("lima_core")

#: where a refused edit from an editor is kept, in the current directory (Lima's name)
REJECTED_YAML = "lima.REJECTED.yaml"


@dataclasses.dataclass
class Edit:
    name: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read(name: str) -> tuple[Path, str]:
    """The instance's lima.yaml path and text."""
    path = store.existing_dir(name) / filenames.LIMA_YAML
    try:
        return path, path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; the instance is broken (`lima delete -f {name}` removes it)") \
            from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def apply(name: str, edits: list[tuple[str, str]]) -> Edit:
    """The instance's lima.yaml with *edits* (``(what, expression)``) applied, checked; not written."""
    path, before = read(name)
    data = yamlfile.load(before, str(path)).data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping")
    after_data = yq.apply_all(edits, data)
    after = before if after_data == data else yamlfile.dump(after_data)
    edit = Edit(name, before, after)
    if edit.changed:
        check(edit)
    return edit


def check(edit: Edit) -> LimaYAML:
    """ConfigError (or the driver's ValidationError) when *edit.after* cannot be the instance's lima.yaml."""
    inst_dir = store.existing_dir(edit.name)
    source = f"{inst_dir / filenames.LIMA_YAML} (as edited)"
    cfg = limayaml.load_text(edit.after, source, warn_unknown=True)
    try:
        old: LimaYAML | None = limayaml.load_text(edit.before, str(inst_dir / filenames.LIMA_YAML))
    except LimaError:
        old = None  # the instance was broken; the new lima.yaml may mend it
    if old is not None:
        for attr, key in (("vm_type", "vmType"), ("arch", "arch")):
            if getattr(old, attr) != getattr(cfg, attr):
                raise ConfigError(f"{key}: an existing instance's {key} cannot change ({getattr(old, attr)} -> "
                                  f"{getattr(cfg, attr)}): its disk was made for {getattr(old, attr)}; create a new "
                                  f"instance instead (`lima create --{'vm-type' if attr == 'vm_type' else 'arch'}="
                                  f"{getattr(cfg, attr)} --name=NAME ...`)")
        if parse_size(cfg.disk or "0", "disk") < parse_size(old.disk or "0", "disk"):
            raise ConfigError(f"disk: shrinking the disk is not supported ({old.disk} -> {cfg.disk})")
    registry.discover().get(cfg.vm_type or "")
    fields.enforce(cfg, cfg.vm_type or "", source, warn=False)
    _driver_validate(edit.name, cfg)
    return cfg


def _driver_validate(name: str, cfg: LimaYAML) -> None:
    """The driver's ``validate`` of *cfg*. Not for a running instance of an external driver: its server
    serves the running VM, and configuring it with another lima.yaml would change what it serves (the
    driver validates the new lima.yaml at the next start)."""
    from . import instance
    from .external import supervisor

    inst = store.inspect(name, driver_status=False)
    entry = registry.discover().get(cfg.vm_type or "")
    running = inst.status == STATUS_RUNNING
    if running and entry.is_external:
        return
    inst.config = cfg
    inst_dir = Path(inst.dir)
    try:
        host = instance.load_driver(inst)
        host.validate()
    finally:
        if not instance.host_agent_running(inst_dir):
            supervisor.stop_servers(inst_dir)


def write(edit: Edit) -> None:
    """Replace the instance's lima.yaml with *edit.after* (0644, in one step)."""
    path = store.existing_dir(edit.name) / filenames.LIMA_YAML
    atomicfile.write(path, edit.after, mode=0o644)


def save_rejected(text: str, cwd: Path | None = None) -> Path:
    """Keep a refused edit as ./lima.REJECTED.yaml, so the user's work is not lost."""
    path = (cwd or Path.cwd()) / REJECTED_YAML
    path.write_text(text)
    return path
