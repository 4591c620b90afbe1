"""``provision`` entries of ``mode: ansible`` (deprecated in Lima): playbooks run on the host after the guest is ready.

As Lima does, ``lima start`` runs ``ansible-playbook -i <inst>/ansible-inventory.yaml PLAYBOOK`` for each,
with the host's environment plus the ``PARAM_*`` variables; the inventory reaches the guest through the
instance's ssh.config. A failing playbook fails the start (the VM keeps running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from . import filenames, sshutil, yamlfile
from .errors import InstanceError
from .limatype import Instance

INVENTORY = "ansible-inventory.yaml"


def playbooks(instance: Instance) -> list[str]:
    cfg = instance.config
    return [p.playbook for p in (cfg.provision or []) if p.mode == "ansible" and p.playbook] if cfg else []


def run_playbooks(instance: Instance) -> None:
    books = playbooks(instance)
    if not books:
        return
    exe = shutil.which("ansible-playbook")
    if exe is None:
        raise InstanceError(f"instance {instance.name!r} has ansible provisions ({', '.join(books)}) but "
                            "ansible-playbook is not on the host's PATH; install Ansible, or remove those "
                            "provisions (mode: ansible is deprecated in Lima)")
    inst_dir = Path(instance.dir)
    inventory = inst_dir / INVENTORY
    inventory.write_text(yamlfile.dump({"lima": {"hosts": {instance.name: {
        "ansible_connection": "ssh", "ansible_host": sshutil.host_alias(instance.name),
        "ansible_ssh_common_args": f"-F {inst_dir / filenames.SSH_CONFIG}"}}}}))
    params = instance.config.param or {} if instance.config else {}
    env = {**os.environ, **{f"PARAM_{k}": v for k, v in params.items()}}
    for book in books:
        proc = subprocess.run([exe, "-i", str(inventory), book], env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise InstanceError(f"instance {instance.name!r}: ansible-playbook {book} failed with exit status "
                                f"{proc.returncode}; the VM is left running (`lima stop {instance.name}` to stop it)")
