"""The instance store: names, directories, and what state an instance is in.

``inspect`` computes an instance's status as Lima's ``store.Inspect`` does:
lima.yaml must load; the host agent's pid (``ha.pid``) and the VM's pid
(``<vmType>.pid``) decide Running / Stopped / Broken, unless the driver's own
``inspect_status`` answers (drivers whose VM state lives on the host side,
such as wsl2). lima-core adds Suspended: neither runs and the instance has a
suspend record (``suspended.json``, see :mod:`lima_core.suspended`). Which drivers answer is recorded in ``driver.json`` when the
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

from . import atomicfile, dirnames, filenames, limayaml, locks, pidfile, suspended, textfile
from ._version import LIMA_COMPAT_VERSION
from .dirnames import instance_names  # noqa: F401 - re-exported: store.instance_names()
from .errors import ConfigError, CorruptFile, InstanceError, InstanceExists, InstanceNotFound, InvalidName, LimaError
from .limatype import (
    STATUS_BROKEN,
    STATUS_RUNNING,
    STATUS_STOPPED,
    STATUS_SUSPENDED,
    STATUS_UNKNOWN,
    Instance,
    LimaYAML,
)
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


def check_socket_paths(name: str) -> None:
    """The instance's sockets fit the unix socket path limit (Lima's check, at create and start).

    Only commands that make sockets ask: an instance whose LIMA_HOME moved to
    a longer path can still be listed, stopped and deleted.
    """
    sock = str(dirnames.instance_dir(name)) + _LONGEST_SOCKET
    if len(sock) >= UNIX_PATH_MAX:
        exists = dirnames.instance_dir(name).is_dir()
        raise InvalidName(f"instance name {name!r} is too long for LIMA_HOME {dirnames.lima_home()}: its sockets "
                          f"would exceed the {UNIX_PATH_MAX}-byte unix socket path limit; "
                          + ("use a shorter LIMA_HOME (`lima delete` still works here)" if exists
                             else "use a shorter name or a shorter LIMA_HOME"))


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
    """``Port N`` from the instance's ssh.config; 0 without one. CorruptFile when it is not text."""
    try:
        text = textfile.read(inst_dir / filenames.SSH_CONFIG)
    except OSError:
        return 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].lower() == "port" and parts[1].isdigit():
            return int(parts[1])
    return 0


def host_agent(inst_dir: Path, *, thorough: bool = False) -> pidfile.PidStatus:
    """The instance's host agent. A pid file without identity record (Lima's) is accepted only for a
    process that names the instance directory (Lima's runs ``hostagent --pidfile <dir>/ha.pid``).

    A host agent the pid file does not lead to (the file is damaged; with *thorough*, also when it is
    missing: ``lima stop -f`` must find everything) is still found while it holds ``ha.lock``, where the
    system tells who holds a lock (``locks.holders``). That look takes no lock: a host agent takes
    ``ha.lock`` without waiting, and a probe at that moment would make it exit "already running".
    """
    status = pidfile.read(inst_dir / filenames.HOST_AGENT_PID, expect=HOST_AGENT_CMDLINE, owner=inst_dir)
    if status.alive or not (status.reason or thorough):
        return status
    import psutil

    for pid in locks.holders(inst_dir / filenames.HOST_AGENT_LOCK):
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if HOST_AGENT_CMDLINE in cmdline and cmdline[-1:] == [inst_dir.name]:
            why = status.reason or f"{filenames.HOST_AGENT_PID} is missing"
            return pidfile.PidStatus(pid=pid, process=proc, reason=f"{why}; the host agent holding "
                                                                  f"{filenames.HOST_AGENT_LOCK} is process {pid}")
    return status


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
        inst.lima_version = textfile.read(inst_dir / filenames.LIMA_VERSION).strip()
    except OSError:
        inst.lima_version = ""
    except CorruptFile as exc:
        inst.lima_version = ""
        inst.errors.append(exc.message)

    ha = host_agent(inst_dir)
    if ha.reason and (ha.alive or not ha.pid):  # a garbled pid file: say so
        inst.errors.append(ha.reason)
    elif ha.reason:
        log.debug("%s", ha.reason)
    inst.host_agent_pid = ha.pid if ha.alive else 0
    if inst.ssh_local_port == 0:
        try:
            inst.ssh_local_port = ssh_port_from_config(inst_dir)
        except CorruptFile as exc:
            inst.errors.append(exc.message)
    hooks = read_driver_info(inst_dir).get("hooks")
    return inst, isinstance(hooks, list) and "inspect_status" in hooks


def _settle(inst: Instance, answer: str | LimaError) -> Instance:
    """The status: the driver's *answer*, else from the pid files."""
    if isinstance(answer, LimaError):
        inst.status = STATUS_BROKEN
        inst.errors.append(answer.message)
        return inst
    name, inst_dir = inst.name, Path(inst.dir)
    vm = vm_process(inst_dir, inst.vm_type)
    if vm.reason and (vm.alive or not vm.pid):  # a garbled pid file: say so
        inst.errors.append(vm.reason)
    inst.driver_pid = vm.pid if vm.alive else 0
    if answer:
        inst.status = answer
        return inst
    if inst.host_agent_pid and inst.driver_pid:
        inst.status = STATUS_RUNNING
    elif not inst.host_agent_pid and not inst.driver_pid:
        inst.status = STATUS_SUSPENDED if suspended.exists(inst_dir) else STATUS_STOPPED
    elif inst.host_agent_pid:
        inst.status = STATUS_BROKEN
        inst.errors.append(f"the host agent is running but the {inst.vm_type} VM is not; run `lima stop -f {name}`")
    else:
        inst.status = STATUS_BROKEN
        inst.errors.append(f"the {inst.vm_type} VM is running but its host agent is not; run `lima stop -f {name}`")
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


# -- interrupted deletes ----------------------------------------------------------------------


def interrupted_deletes(name: str | None = None) -> list[Path]:
    """What ``lima delete`` runs that were killed halfway left in LIMA_HOME (``.<name>.deleting-<pid>``).

    ``lima delete`` renames the instance directory first and then removes it;
    a directory whose deleting process is gone (no process has that pid, or
    the one that has it started after the rename) is a leftover. One being
    removed right now is not.
    """
    import psutil

    left = []
    for _, pid, path in dirnames.deleting_dirs(name):
        try:
            renamed = path.lstat().st_ctime
            started = psutil.Process(pid).create_time()
        except FileNotFoundError:
            continue
        except psutil.NoSuchProcess:
            started = None
        if started is None or started > renamed + 1:
            left.append(path)
    return left


def disk_usage(path: Path) -> int:
    """Bytes *path* takes on disk (a sparse disk image counts what it uses)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for entry in dirs + files:
            try:
                total += os.lstat(os.path.join(root, entry)).st_blocks * 512
            except OSError:
                continue
    return total


def write_new(name: str, yaml_text: str) -> Path:
    """Create the instance directory (0700) with lima.yaml (0644) and lima-version (0444).

    On failure (a full disk, no permission) nothing is left behind and an
    InstanceError says why.
    """
    inst_dir = dirnames.instance_dir(name)
    try:
        dirnames.ensure_home()
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
