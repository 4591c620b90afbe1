"""``copyToHost``: files copied from the guest when the instance is ready, as Lima does.

Each file is read over SSH (``cat``, or ``sudo cat`` when the user may not
read it) and written on the host with mode 0600, its directory made with 0700;
a symlink in place of the file is not followed. ``skipIfMissing`` skips a file
the guest does not have; ``deleteOnStop`` removes the copy when the host agent
stops. Any other failure makes the start degraded.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from pathlib import Path

from .. import cidata, gotemplate, sshutil, templatevalues
from ..limatype import Instance
from ..users import GuestUser

log = logging.getLogger("lima_core.hostagent")


def host_template_values(instance: Instance) -> dict[str, object]:
    """What ``{{.X}}`` means in a host path of lima.yaml."""
    return templatevalues.host(Path(instance.dir), instance.config.param if instance.config else None)


def copy_all(instance: Instance, user: GuestUser) -> tuple[list[str], list[Path]]:
    """Copy every entry; (errors, the host files to delete on stop)."""
    cfg = instance.config
    assert cfg is not None
    inst_dir = Path(instance.dir)
    guest_values = cidata.guest_template_values(instance, user)
    host_values = host_template_values(instance)
    errors: list[str] = []
    delete_on_stop: list[Path] = []
    for i, entry in enumerate(cfg.copy_to_host or []):
        try:
            guest = gotemplate.expand(entry.guest or "", guest_values, f"copyToHost[{i}].guest")
            host = Path(os.path.expanduser(gotemplate.expand(entry.host or "", host_values, f"copyToHost[{i}].host")))
        except Exception as exc:  # a template error: reported like any other copy failure
            errors.append(str(exc))
            continue
        data, error = _read(inst_dir, instance.name, guest)
        if error == "missing" and entry.skip_if_missing:
            log.info("copyToHost: %s does not exist in the guest; skipped", guest)
            continue
        if data is None:
            errors.append(f"copyToHost[{i}]: cannot read {guest} in the guest: {error}")
            continue
        try:
            _write_private(host, data)
        except OSError as exc:
            errors.append(f"copyToHost[{i}]: cannot write {host}: {exc.strerror or exc}")
            continue
        log.info("Copied %s from the guest to %s", guest, host)
        if entry.delete_on_stop:
            delete_on_stop.append(host)
    return errors, delete_on_stop


def _read(inst_dir: Path, name: str, guest: str) -> tuple[bytes | None, str]:
    ssh = sshutil.command(inst_dir, name, connect_timeout=5, tty=False)
    for prefix in ("", "sudo -n "):
        try:
            proc = subprocess.run([*ssh, "--", f"env LANG=C LC_ALL=C {prefix}cat {shlex.quote(guest)}"],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            return None, "no answer within 120 s"
        if proc.returncode == 0:
            return proc.stdout, ""
        err = proc.stderr.decode(errors="replace").strip()
        if "No such file or directory" in err:
            return None, "missing"
        if "Permission denied" not in err:
            return None, err or f"exit status {proc.returncode}"
    return None, "permission denied, also with sudo"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(data)
