"""``lima show-ssh``: the SSH command line of an instance (deprecated in Lima, as here: use ``ssh -F``)."""

from __future__ import annotations

import logging

import typer

from ._common import choice, complete_instances

FORMATS = ("cmd", "args", "options", "config")


def show_ssh(name: str = typer.Argument(..., help="the instance", autocompletion=complete_instances),
             format_: str = typer.Option("cmd", "--format", "-f", help="cmd, args, options or config")) -> None:
    """Show the SSH command line (deprecated; use `ssh -F <dir>/ssh.config lima-NAME` instead).

    \b
    cmd:     ssh -o IdentityFile="..." -o User=... -o Hostname=127.0.0.1 -o Port=N lima-NAME
    args:    the same without "ssh" and the host
    options: one option=value per line
    config:  a Host block for ~/.ssh/config
    """
    import shlex

    from .. import sshutil, store
    from ..errors import InstanceError

    choice(format_, FORMATS, "format")
    inst_dir = store.existing_dir(name)
    inst = store.inspect(name, driver_status=False)
    if inst.config is None or inst.config.user is None or inst.config.ssh is None:
        raise InstanceError(f"instance {name!r} is broken: {'; '.join(inst.errors) or 'no lima.yaml'}")
    logging.getLogger("lima_core").warning("`lima show-ssh` is deprecated; use `ssh -F %s %s`",
                                           inst_dir / "ssh.config", sshutil.host_alias(name))
    ssh = inst.config.ssh
    opts = sshutil.options(inst_dir, inst.config.user.name or "", inst.ssh_local_port, inst.ssh_address or "127.0.0.1",
                           forward_agent=bool(ssh.forward_agent), forward_x11=bool(ssh.forward_x11),
                           forward_x11_trusted=bool(ssh.forward_x11_trusted))
    alias = sshutil.host_alias(name)
    if format_ == "config":
        print(f"Host {alias}")
        for key, value in opts:
            print(f"  {key} {value}")
        return
    pairs = [f"{key}={value}" for key, value in opts]
    if format_ == "options":
        print("\n".join(pairs))
        return
    args = " ".join(f"-o {shlex.quote(p) if not p.split('=', 1)[1].startswith(chr(34)) else p}" for p in pairs)
    print(args if format_ == "args" else f"ssh {args} {alias}")
