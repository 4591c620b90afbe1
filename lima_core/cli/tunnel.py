"""``lima tunnel``: a SOCKS proxy on the host through the instance (``ssh -D``), so the host joins its network."""

from __future__ import annotations

import sys

import typer

from ..errors import InstanceError, LimaError
from ._common import complete_instances


def tunnel(name: str = typer.Argument(..., help="the instance", autocompletion=complete_instances),
           type_: str = typer.Option("socks", "--type", help='tunnel type; only "socks" exists'),
           socks_port: str = typer.Option("0", "--socks-port", help="SOCKS port on 127.0.0.1 (default: a free one)",
                                          show_default=False)) -> None:
    """Create a tunnel for Lima: a SOCKS proxy on 127.0.0.1 that connects through the guest.

    The tunnel is an ssh process of its own that runs until the instance stops (or it is killed);
    its pid is in <instance dir>/tunnel-PORT.pid."""
    import logging
    import subprocess
    import tempfile
    from pathlib import Path

    from .. import pidfile, sshutil, store
    from ..limatype import STATUS_RUNNING

    logging.getLogger("lima_core").warning("`lima tunnel` is experimental")
    if type_ != "socks":
        raise LimaError(f"unknown tunnel type {type_!r}; only \"socks\" is implemented")
    if not socks_port.isdigit() or (int(socks_port) and not 1024 <= int(socks_port) <= 65535):
        raise LimaError(f"invalid SOCKS port {socks_port!r}; use 1024-65535 (or 0 for a free one)")
    inst_dir = store.existing_dir(name)
    inst = store.inspect(name)
    if inst.status != STATUS_RUNNING:
        raise InstanceError(f"instance {name!r} is {inst.status or 'not running'}; run `lima start {name}`")
    port = int(socks_port) or _free_port()
    args = sshutil.command(inst_dir, name, master=False) + [
        "-q", "-f", "-N", "-o", "ExitOnForwardFailure=yes", "-D", f"127.0.0.1:{port}"]
    # ssh forks into the background once the proxy listens; its stderr goes to a file, not to a
    # pipe of ours, which it would hold open for as long as it runs.
    with tempfile.TemporaryFile() as err:
        code = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err).returncode
        err.seek(0)
        said = err.read().decode(errors="replace").strip()
    if code != 0:
        raise LimaError(f"the tunnel did not start: ssh exited with status {code}" + (f": {said}" if said else ""))
    pid = _tunnel_pid(port)
    if pid:
        pidfile.write(Path(inst_dir) / f"tunnel-{port}.pid", pid)
    out = sys.stdout
    out.write(f"Set `ALL_PROXY=socks5h://127.0.0.1:{port}`, etc.\n")
    out.write(f"The instance can be connected from the host as <http://{inst.hostname}.internal> via a web browser.\n")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tunnel_pid(port: int) -> int:
    """The background ssh serving the proxy on *port* (ssh -f does not say its pid)."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and cmd[0].endswith("ssh") and f"127.0.0.1:{port}" in cmd and "-D" in cmd:
            return int(proc.info["pid"])
    return 0
