"""``ha.sock``: the host agent's HTTP API on a unix socket (``GET /v1/info``, as Lima's; and lima-core's
``GET /v1/port-forwards``, the current forwards and the guest agent's state)."""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

PORT_FORWARDS = "/v1/port-forwards"


class InfoServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """``GET /v1/info`` on ha.sock: ``{"sshLocalPort": N}``; ``GET /v1/port-forwards``."""

    daemon_threads = True

    @classmethod
    def serve(cls, path: Path, agent: Any) -> None:
        import http.server  # here, not at the top: its import would delay the VM's start

        with contextlib.suppress(FileNotFoundError):
            path.unlink()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/v1/info":
                    answer = {"sshLocalPort": agent.ssh_local_port}
                elif self.path == PORT_FORWARDS:
                    answer = agent.port_forwards()
                else:
                    self.send_error(404)
                    return
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

            def address_string(self) -> str:
                return "ha.sock"

        old = os.umask(0o177)
        try:
            server = cls(str(path), Handler)
        finally:
            os.umask(old)
        threading.Thread(target=server.serve_forever, name="ha.sock", daemon=True).start()
