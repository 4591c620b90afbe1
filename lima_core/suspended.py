"""The record of a suspended instance: ``suspended.json`` in its directory (lima-core's, not Lima's).

The host agent writes it once the driver's ``suspend`` hook has saved the
VM's state and the VM has ended. While it exists and nothing of the instance
runs, the instance is Suspended (``lima list``), and the next start resumes
it. It holds what resuming needs on lima-core's side; the saved state itself
is the driver's (``qemu.savedstate``, ``vz.savedstate``):

- the instance id of the boot being resumed: cidata is not regenerated (the
  guest still has it mounted), and the guest's markers hold that id;
- the SSH port the VM had, kept if it is still free;
- the shares unmounted in the guest before the save, as the fstab rows
  cidata wrote, to mount them again after the resume;
- when, how long the save took and how large the state is, for the user;
- lima.yaml's digest then, to warn that edits made meanwhile wait for the next boot.

The host agent removes it once the resumed VM runs; ``lima stop`` removes it
when it discards the saved state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from . import atomicfile, filenames
from ._jsonmodel import JSONModel, key, model
from .errors import ConfigError, InstanceError


@model
class Record(JSONModel):
    #: the driver that saved the state (vmType)
    driver: str = key("driver", "")
    #: when the state was saved (ISO 8601)
    time: str = key("time", "")
    #: cidata's instance id of the boot the state belongs to
    instance_id: str = key("instanceID", "")
    ssh_local_port: int = key("sshLocalPort", 0)
    #: fstab rows ``[spec, mount point, type, options]`` unmounted in the guest before the save
    shares: list[list[str]] = key("shares", factory=list)
    #: the saved state's size, as the driver reported it (0: unknown)
    state_bytes: int = key("stateBytes", 0)
    #: how long the suspend took in the host agent, guest work included
    milliseconds: int = key("milliseconds", 0)
    #: sha256 of lima.yaml when the state was saved
    lima_yaml_sha256: str = key("limaYAMLSHA256", "")
    #: the host agent's DNS ports (UDP, TCP) the guest's redirect points at, when it served DNS
    dns_ports: list[int] = key("dnsPorts", factory=list)


def path(inst_dir: Path) -> Path:
    return inst_dir / filenames.SUSPENDED


def exists(inst_dir: Path) -> bool:
    return path(inst_dir).exists()


def read(inst_dir: Path) -> Record | None:
    """The record, or None when the instance is not suspended.

    :raises InstanceError: the record exists but cannot be read (what to do is said).
    """
    p = path(inst_dir)
    try:
        data = json.loads(p.read_text())
        return Record.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ConfigError) as exc:
        raise InstanceError(f"the suspend record {p} cannot be read ({exc}); run `lima stop {inst_dir.name}` to "
                            "discard the saved state, then `lima start` boots the instance afresh") from None


def write(inst_dir: Path, record: Record) -> None:
    """Write the record, on disk before returning (it is what makes the saved state resumable)."""
    atomicfile.write(path(inst_dir), json.dumps(record.to_json(), indent=1) + "\n", mode=0o644, sync=True)


def remove(inst_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path(inst_dir).unlink()


def file_identity(inst_dir: Path, names: tuple[str, ...] = (filenames.DISK, filenames.CIDATA_ISO)) -> dict[str, list[int]]:
    """``{name: [size, mtime_ns]}`` of files in the instance directory (``[-1, 0]``: missing), for a driver to
    record beside its saved state: the disk (and cidata, which the guest has mounted) must not change until the
    resume, and :func:`changed_files` tells whether they did."""
    out = {}
    for name in names:
        try:
            st = (inst_dir / name).stat()
            out[name] = [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out[name] = [-1, 0]
    return out


def changed_files(recorded: dict[str, list[int]], inst_dir: Path) -> list[str]:
    """The names in *recorded* (from :func:`file_identity`) whose file changed since."""
    now = file_identity(inst_dir, tuple(recorded))
    return [name for name, identity in recorded.items() if now[name] != list(identity)]


def lima_yaml_digest(inst_dir: Path) -> str:
    try:
        return hashlib.sha256((inst_dir / filenames.LIMA_YAML).read_bytes()).hexdigest()
    except OSError:
        return ""
