"""The host agent's requirements: what must hold in the guest before ``lima start`` says READY.

As in Lima, three groups run in order over SSH: the essential ones (SSH
answers, the user's session is ready, the ControlMaster is up; for
reverse-sshfs, sshfs is installed and FUSE allows allow_other), the optional
ones (each readiness probe of lima.yaml), and the final one (this boot's boot
scripts have finished). Each requirement is a script piped to the
interpreter its ``#!`` line names, retried until it succeeds or its time is
up; a ``fatal`` one ends its group at its first failure. Probes get the
``PARAM_*`` variables of param.env, as Lima's do.

lima-core retries sooner than Lima's 3 s (the essential and final checks are
a ``cat`` each), and bounds each attempt, so a hung SSH session cannot stall
the start.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .. import cidata, gotemplate, sshutil
from ..limatype import Instance
from ..users import GuestUser
from .readiness import SSH_CONNECT_TIMEOUT, SSH_POLL_INTERVAL

log = logging.getLogger("lima_core.hostagent")

#: How long a requirement may take in all (Lima: 200 tries, 3 s apart).
REQUIREMENT_TIMEOUT = 600.0
#: How long one attempt may take (Lima has no bound: a hung session would stall the group).
ATTEMPT_TIMEOUT = 120.0
PROBE_INTERVAL = 1.0
#: boot.Linux/35-setup-packages.sh writes this boot's instance id here once FUSE allows allow_other
FUSE_READY = "/run/lima-fuse-ready"


@dataclasses.dataclass(frozen=True)
class Requirement:
    description: str
    script: str
    hint: str
    #: tried once; a failure ends the group (the later requirements cannot hold either)
    fatal: bool = False
    #: run without the ControlMaster (before it exists)
    no_master: bool = False
    #: export param.env's PARAM_* before the script (probes)
    params: bool = False
    interval: float = SSH_POLL_INTERVAL
    #: wait for the SSH banner before each attempt (the first contact with the guest)
    banner: bool = False


@dataclasses.dataclass
class Outcome:
    ok: bool
    output: str = ""


def _marker_check(path: str, iid: str) -> str:
    return f'#!/bin/sh\ntest "$(cat {path} 2>/dev/null)" = {shlex.quote(iid)}\n'


def essential(instance: Instance, iid: str) -> list[Requirement]:
    cfg = instance.config
    assert cfg is not None
    reqs = [Requirement("ssh", "#!/bin/sh\ntrue\n", "Failed to SSH into the guest. Make sure that the YAML field "
                        "\"ssh.localPort\" is not used by other processes on the host; if a passphrase is set for "
                        "the key, run ssh-agent.", no_master=True, banner=True)]
    if cfg.os == "Linux" and not cfg.plain:
        reqs.append(Requirement("user session is ready for ssh", _marker_check(cidata.SSH_READY, iid),
                                "The guest's boot scripts have not made the user session ready yet; see "
                                "/var/log/cloud-init-output.log in the guest", no_master=True))
    if reverse_sshfs(instance):
        # As Lima's: these two use the ControlMaster, so they start it.
        reqs.append(Requirement("sshfs binary to be installed", "#!/bin/sh\ncommand -v sshfs\n",
                                "The boot scripts install sshfs for reverse-sshfs mounts; see "
                                "/var/log/cloud-init-output.log in the guest (the image needs a package manager "
                                "that can reach its mirror, or sshfs installed)"))
        reqs.append(Requirement("fuse to allow_other as user", _marker_check(FUSE_READY, iid),
                                "The boot scripts set user_allow_other in /etc/fuse.conf for reverse-sshfs mounts; "
                                "see /var/log/cloud-init-output.log in the guest"))
    else:
        reqs.append(Requirement("Explicitly start ssh ControlMaster", "#!/bin/sh\ntrue\n",
                                "The persistent ssh ControlMaster should be started immediately"))
    return reqs


def reverse_sshfs(instance: Instance) -> bool:
    """Whether the host agent mounts this instance's directories with reverse-sshfs (non-plain Linux guests
    with at least one mount, as in Lima)."""
    cfg = instance.config
    return bool(cfg is not None and cfg.os == "Linux" and not cfg.plain and cfg.mount_type == "reverse-sshfs"
                and cfg.mounts)


def optional(instance: Instance, user: GuestUser, *, containerd: bool = False) -> list[Requirement]:
    """The probes, after the containerd checks when the guest installs containerd."""
    cfg = instance.config
    assert cfg is not None
    values = cidata.guest_template_values(instance, user)
    out = []
    if containerd:
        prefix = shlex.quote(cfg.guest_install_prefix or "/usr/local")
        out += [Requirement("systemd must be available",
                            "#!/bin/sh\ncommand -v systemctl >/dev/null 2>&1 || { echo 'systemctl is not found'; "
                            "exit 1; }\n",
                            "systemd is needed for containerd; use an image with systemd, or set containerd.system "
                            "and containerd.user to false", fatal=True),
                Requirement("containerd binaries to be installed",
                            f"#!/bin/sh\ncommand -v nerdctl >/dev/null 2>&1 || test -x {prefix}/bin/nerdctl\n",
                            "See /var/log/cloud-init-output.log in the guest", interval=PROBE_INTERVAL)]
    for i, probe in enumerate(cfg.probes or []):
        script = gotemplate.expand(probe.script or "", values, f"probes[{i}].script")
        out.append(Requirement(probe.description or f"user probe {i + 1}", script, probe.hint or "",
                               params=True, interval=PROBE_INTERVAL))
    return out


def final(iid: str) -> list[Requirement]:
    return [Requirement("boot scripts must have finished", _marker_check(cidata.BOOT_DONE, iid),
                        "The boot scripts have not finished yet; see /var/log/cloud-init-output.log in the guest")]


def remote_command(req: Requirement) -> str:
    """The command ssh runs: the script's interpreter (from its ``#!`` line), reading the script on stdin;
    for probes, behind a shell that exports param.env's variables first (read with sudo: only root may
    read cidata)."""
    first = req.script.splitlines()[0] if req.script else ""
    interpreter = first[2:].strip() if first.startswith("#!") else "/bin/sh"
    if not req.params:
        return interpreter
    prelude = ("params=$(sudo -n cat " + cidata.GUEST_MOUNT + "/param.env 2>/dev/null)\n"
               "while IFS= read -r line; do [ -n \"$line\" ] && export \"$line\"; done <<LIMA_PARAMS_EOF\n"
               "$params\nLIMA_PARAMS_EOF\n"
               f"exec {interpreter}\n")
    return "/bin/sh -c " + shlex.quote(prelude)


class Runner:
    """Runs requirements over the instance's ssh.config until each holds, reporting as it goes."""

    def __init__(self, inst_dir: Path, name: str, address: str, port: int, stopping: Callable[[], bool],
                 say: Callable[..., None]) -> None:
        self.inst_dir = inst_dir
        self.name = name
        self.address = address
        self.port = port
        self.stopping = stopping
        #: ``say(message, waiting=..., last_error=...)``: an event for `lima start`
        self.say = say

    def attempt(self, req: Requirement) -> Outcome:
        if req.banner and sshutil.wait_banner(self.address, self.port, SSH_CONNECT_TIMEOUT + SSH_POLL_INTERVAL,
                                              self.stopping) is sshutil.Banner.SILENT:
            return Outcome(False, "the guest's SSH server has not answered yet")
        ssh = sshutil.command(self.inst_dir, self.name, connect_timeout=SSH_CONNECT_TIMEOUT, tty=False,
                              master=not req.no_master)
        try:
            proc = subprocess.run([*ssh, "--", remote_command(req)], input=req.script.encode(),
                                  capture_output=True, timeout=ATTEMPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            return Outcome(False, f"no answer within {ATTEMPT_TIMEOUT:g} s")
        text = (proc.stdout + proc.stderr).decode(errors="replace").strip()
        return Outcome(proc.returncode == 0, text or f"exit status {proc.returncode}")

    def run_group(self, label: str, reqs: list[Requirement], timeout: float = REQUIREMENT_TIMEOUT) -> list[str]:
        """Run *reqs* in order; the errors of those that did not hold (none: all held)."""
        errors: list[str] = []
        for i, req in enumerate(reqs, 1):
            what = f"the {label} requirement {i} of {len(reqs)}"
            self.say(f"Waiting for {what}: {req.description!r}", waiting_for=req.description)
            log.info("Waiting for %s: %r", what, req.description)
            outcome = self._until_held(req, timeout)
            if outcome is None:
                return errors  # asked to stop
            if outcome.ok:
                log.info("%s is satisfied", what[0].upper() + what[1:])
                continue
            error = f"failed to satisfy {what} {req.description!r}: " + \
                    (f"{req.hint}: " if req.hint else "") + _last_lines(outcome.output)
            log.warning("%s", error)
            errors.append(error)
            if req.fatal:
                log.info("No further %s requirements will be checked", label)
                break
        return errors

    def _until_held(self, req: Requirement, timeout: float) -> Outcome | None:
        deadline = time.monotonic() + timeout
        last = ""
        while not self.stopping():
            outcome = self.attempt(req)
            if outcome.ok or req.fatal:  # as Lima: a fatal requirement is not retried
                return outcome
            if outcome.output != last:
                last = outcome.output
                self.say("", waiting_for=req.description, last_error=_last_lines(last))
            if time.monotonic() + req.interval > deadline:
                return outcome
            time.sleep(req.interval)
        return None


def _last_lines(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
