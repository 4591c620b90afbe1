"""The instance store: names, directories, and what state an instance is in.

``inspect`` computes an instance's status as Lima's ``store.Inspect`` does:
lima.yaml must load; the host agent's pid (``ha.pid``) and the VM's pid
(``<vmType>.pid``) decide Running / Stopped / Broken, unless the driver's own
``inspect_status`` answers (drivers whose VM state lives on the host side,
such as wsl2). Which drivers answer is recorded in ``driver.json`` when the
instance's driver is first loaded, so ``lima list`` spawns no process and
imports no driver for the others; :func:`inspect_all` asks each driver that
does answer once for all of its instances.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from . import atomicfile, dirnames, filenames, limayaml, pidfile
from ._version import LIMA_COMPAT_VERSION
from .dirnames import instance_names  # noqa: F401 - re-exported: store.instance_names()
from .errors import ConfigError, InstanceError, InstanceExists, InstanceNotFound, InvalidName, LimaError
from .limatype import STATUS_BROKEN, STATUS_RUNNING, STATUS_STOPPED, STATUS_UNKNOWN, Instance, LimaYAML
from .templatevalues import hostname

log = logging.getLogger("lima_core")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
MAX_NAME_LENGTH = 76
UNIX_PATH_MAX = 104 if sys.platform == "darwin" or "bsd" in sys.platform else 108
#: Lima checks the longest socket it makes: ssh.sock plus ssh's 16-character suffix.
_LONGEST_SOCKET = "/ssh.sock.1234567890123456"
HOST_AGENT_CMDLINE = "hostagent"
DRIVER_INFO = "driver.json"


def validate_name(name: str) -> None:
    """Lima's rule for instance names; InvalidName says which part is broken."""
    if not name:
        raise InvalidName("the instance name is empty; give a name such as 'default' or 'dev-1'")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"instance name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not NAME_PATTERN.fullmatch(name):  # not match(): "$" also matches before a final newline
        raise InvalidName(f"invalid instance name {name!r}: use letters and digits, joined by single '.', '_' "
                          "or '-' (for example 'dev-1')")
    if name.lower().endswith((".yml", ".yaml")):
        raise InvalidName(f"invalid instance name {name!r}: it must not end in .yaml or .yml "
                          f"(to create from that file, run `lima create {name}`)")
    sock = str(dirnames.instance_dir(name)) + _LONGEST_SOCKET
    if len(sock) >= UNIX_PATH_MAX:
        raise InvalidName(f"instance name {name!r} is too long for LIMA_HOME {dirnames.lima_home()}: its sockets "
                          f"would exceed the {UNIX_PATH_MAX}-byte unix socket path limit; use a shorter name "
                          "or a shorter LIMA_HOME")


def existing_dir(name: str) -> Path:
    validate_name(name)
    d = dirnames.instance_dir(name)
    if not d.is_dir():
        raise InstanceNotFound(f"instance {name!r} does not exist; run `lima list` to see the instances")
    return d


def load_config(name: str, *, warn_unknown: bool = False) -> LimaYAML:
    return limayaml.load_file(dirnames.instance_dir(name) / filenames.LIMA_YAML, warn_unknown=warn_unknown)


# -- driver metadata cache ------------------------------------------------------------------


def write_driver_info(inst_dir: Path, name: str, location: str, hooks: list[str]) -> None:
    data = {"name": name, "location": location, "hooks": sorted(hooks)}
    path = inst_dir / DRIVER_INFO
    try:
        if path.exists() and json.loads(path.read_text()) == data:
            return
        atomicfile.write(path, json.dumps(data) + "\n")
    except (OSError, ValueError) as exc:
        log.debug("cannot record %s: %s", path, exc)


def read_driver_info(inst_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((inst_dir / DRIVER_INFO).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# -- inspect ------------------------------------------------------------------------------


def ssh_port_from_config(inst_dir: Path) -> int:
    try:
        for line in (inst_dir / filenames.SSH_CONFIG).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].lower() == "port" and parts[1].isdigit():
                return int(parts[1])
    except OSError:
        pass
    return 0


def host_agent(inst_dir: Path) -> pidfile.PidStatus:
    """The instance's host agent. A pid file without identity record (Lima's) is accepted only for a
    process that names the instance directory (Lima's runs ``hostagent --pidfile <dir>/ha.pid``)."""
    return pidfile.read(inst_dir / filenames.HOST_AGENT_PID, expect=HOST_AGENT_CMDLINE, owner=inst_dir)


def vm_process(inst_dir: Path, vm_type: str) -> pidfile.PidStatus:
    """The instance's VM process (``<vmType>.pid``); never another instance's (see :func:`host_agent`)."""
    return pidfile.read(inst_dir / filenames.pid_file(vm_type), expect=vm_type, owner=inst_dir)


def inspect(name: str, *, driver_status: bool = True) -> Instance:
    """The instance as ``lima list`` shows it. Never raises for a broken instance."""
    return inspect_all([name], driver_status=driver_status)[0]


def inspect_all(names: list[str], *, driver_status: bool = True) -> list[Instance]:
    """:func:`inspect` for each of *names*, each driver asked once for all of its instances.

    A driver that answers ``inspect_status`` is imported once (internal) or
    run once (external, with ``--inspect-status-batch``) per call, however
    many instances it has.
    """
    read = [_read(name) for name in names]
    asking = [inst for inst, ask in read if ask and driver_status]
    answers = _driver_statuses(asking) if asking else {}
    return [inst if ask is None else _settle(inst, answers.get(id(inst), "")) for inst, ask in read]


def _read(name: str) -> tuple[Instance, bool | None]:
    """The instance from its files, all but its status; and whether its driver answers inspect_status
    (None: it is Broken already)."""
    inst_dir = dirnames.instance_dir(name)
    inst = Instance(name=name, hostname=hostname(name), dir=str(inst_dir), status=STATUS_UNKNOWN)
    try:
        validate_name(name)
        cfg = load_config(name)
    except LimaError as exc:
        inst.status = STATUS_BROKEN
        inst.errors.append(exc.message)
        return inst, None
    inst.config = cfg
    inst.vm_type = cfg.vm_type or ""
    inst.arch = cfg.arch or ""
    inst.cpus = cfg.cpus or 0
    try:
        inst.memory = cfg.memory_bytes
        inst.disk = cfg.disk_bytes
    except ConfigError as exc:
        inst.errors.append(exc.message)
    if inst.vm_type == "wsl2":
        inst.cpus = inst.memory = inst.disk = 0
    inst.ssh_address = "127.0.0.1"
    inst.ssh_local_port = (cfg.ssh.local_port if cfg.ssh else 0) or 0
    inst.ssh_config_file = str(inst_dir / filenames.SSH_CONFIG)
    inst.param = dict(cfg.param or {})
    inst.protected = (inst_dir / filenames.PROTECTED).exists()
    inst.message = cfg.message or ""
    try:
        inst.lima_version = (inst_dir / filenames.LIMA_VERSION).read_text().strip()
    except OSError:
        inst.lima_version = ""

    ha = host_agent(inst_dir)
    if ha.reason and not ha.alive and ha.pid:
        log.debug("%s", ha.reason)
    inst.host_agent_pid = ha.pid if ha.alive else 0
    if inst.ssh_local_port == 0:
        inst.ssh_local_port = ssh_port_from_config(inst_dir)
    return inst, "inspect_status" in read_driver_info(inst_dir).get("hooks", [])


def _settle(inst: Instance, answer: str | LimaError) -> Instance:
    """The status: the driver's *answer*, else from the pid files."""
    if isinstance(answer, LimaError):
        inst.status = STATUS_BROKEN
        inst.errors.append(answer.message)
        return inst
    if answer:
        inst.status = answer
        return inst
    name, inst_dir = inst.name, Path(inst.dir)
    vm = vm_process(inst_dir, inst.vm_type)
    inst.driver_pid = vm.pid if vm.alive else 0
    if inst.host_agent_pid and inst.driver_pid:
        inst.status = STATUS_RUNNING
    elif not inst.host_agent_pid and not inst.driver_pid:
        inst.status = STATUS_STOPPED
    elif inst.host_agent_pid:
        inst.status = STATUS_BROKEN
        inst.errors.append("host agent is running but driver is not")
    else:
        inst.status = STATUS_BROKEN
        inst.errors.append(f"{inst.vm_type} driver is running but host agent is not; run `lima stop -f {name}`")
    return inst


def _driver_statuses(instances: list[Instance]) -> dict[int, str | LimaError]:
    """Each instance's status from its driver (keyed by ``id``): one discovery, each driver loaded or run once."""
    from . import registry

    reg = registry.discover()
    groups: dict[str, list[Instance]] = {}
    for inst in instances:
        groups.setdefault(inst.vm_type, []).append(inst)
    answers: dict[int, str | LimaError] = {}
    for vm_type, group in groups.items():
        try:
            entry = reg.get(vm_type)
            if entry.is_external:
                got = _external_statuses(entry.location, group)
            else:
                host = registry.load(entry)
                got = [_answer(host.inspect_status, inst) for inst in group]
        except LimaError as exc:
            got = [exc] * len(group)
        answers.update(zip(map(id, group), got, strict=True))
    return answers


def _external_statuses(path: str, group: list[Instance]) -> list[str | LimaError]:
    from .external import status

    got = status.inspect_statuses(path, group)
    if got is None:  # a driver without the batch flag (Lima's): once per instance
        from .external.client import inspect_status

        got = [_answer(inspect_status, path, inst) for inst in group]
    return got


def _answer(ask: Any, *args: Any) -> str | LimaError:
    try:
        return ask(*args)
    except LimaError as exc:
        return exc


def write_new(name: str, yaml_text: str) -> Path:
    """Create the instance directory (0700) with lima.yaml (0644) and lima-version (0444).

    On failure (a full disk, no permission) nothing is left behind and an
    InstanceError says why.
    """
    inst_dir = dirnames.instance_dir(name)
    try:
        inst_dir.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(inst_dir, 0o700)
    except FileExistsError:
        raise InstanceExists(f"instance {name!r} already exists") from None
    except OSError as exc:
        raise InstanceError(f"cannot create {inst_dir}: {exc.strerror or exc}") from None
    try:
        (inst_dir / filenames.LIMA_YAML).write_text(yaml_text)
        os.chmod(inst_dir / filenames.LIMA_YAML, 0o644)
        version = inst_dir / filenames.LIMA_VERSION
        version.write_text(LIMA_COMPAT_VERSION + "\n")
        os.chmod(version, 0o444)
    except OSError as exc:
        shutil.rmtree(inst_dir, ignore_errors=True)
        raise InstanceError(f"cannot write instance {name!r} in {inst_dir}: {exc.strerror or exc}") from None
    return inst_dir
