"""``lima port-forwards NAME``: what a running instance forwards now, asked of its host agent."""

from __future__ import annotations

import json

import typer

from ._common import choice

FORMATS = ("table", "json")
COLUMNS = ("PROTO", "GUEST", "HOST", "STATE", "VIA")


def port_forwards(
    name: str = typer.Argument(..., help="a running instance"),
    format_: str = typer.Option("table", "--format", help="table or json"),
) -> None:
    """Show the instance's current port forwards and its guest agent."""
    import http.client
    import socket

    from .. import filenames, store
    from ..errors import InstanceError
    from ..hostagent.infoserver import PORT_FORWARDS

    choice(format_, FORMATS, "format")
    inst_dir = store.existing_dir(name)
    if not store.host_agent(inst_dir).alive:
        raise InstanceError(f"instance {name!r} is not running; `lima start {name}` starts it")

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(inst_dir / filenames.HOST_AGENT_SOCK))

    try:
        conn = Connection("ha.sock")
        conn.request("GET", PORT_FORWARDS)
        response = conn.getresponse()
        body = response.read()
        conn.close()
    except OSError as exc:
        raise InstanceError(f"the host agent of {name!r} did not answer on {filenames.HOST_AGENT_SOCK}: "
                            f"{exc.strerror or exc}") from None
    if response.status != 200:
        raise InstanceError(f"the host agent of {name!r} answered {response.status} {response.reason}")
    data = json.loads(body)
    if format_ == "json":
        print(json.dumps(data))
        return
    rows = [COLUMNS] + [(f["protocol"], f["guestAddr"], f["hostAddr"],
                         f["state"] + (f": {f['error']}" if f.get("error") else ""),
                         f["via"] + (" (static)" if f.get("static") else "")) for f in data["portForwards"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        print("    ".join([cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]).rstrip())
    agent = data["guestAgent"]
    detail = ""
    if agent.get("info"):
        detail = f" (lima-guestagent {agent['info'].get('agent')}, Python {agent['info'].get('python')})"
    elif agent.get("error"):
        detail = f" ({agent['error']})"
    typer.echo(f"guest agent: {agent['state']}{detail}", err=True)
