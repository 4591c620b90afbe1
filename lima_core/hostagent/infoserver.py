"""``ha.sock``: the host agent's HTTP API on a unix socket (``GET /v1/info``), as Lima's.

lima-core adds ``GET /v1/port-forwards`` (the current forwards and the guest
agent's state) and ``POST /v1/suspend`` (``lima suspend``): the host agent
saves the VM through its driver and exits. The answer is ``{"stateBytes": N,
"milliseconds": M}``, or an error as Lima's API writes one,
``{"message": "..."}``, with the error's class in ``kind``: 501 when the
driver cannot suspend, 409 when the instance cannot be suspended now, 500
when saving failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any

from ..errors import InstanceError, LimaError, UnsupportedOperation

SUSPEND_PATH = "/v1/suspend"
PORT_FORWARDS = "/v1/port-forwards"


class InfoServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """``GET /v1/info`` on ha.sock: ``{"sshLocalPort": N}``; ``GET /v1/port-forwards``; ``POST /v1/suspend``."""

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
                self._answer(200, answer)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != SUSPEND_PATH:
                    self.send_error(404)
                    return
                try:
                    self._answer(200, agent.suspend())
                except LimaError as exc:
                    code = 501 if isinstance(exc, UnsupportedOperation) else \
                        409 if type(exc) is InstanceError else 500
                    self._answer(code, {"message": exc.message, "kind": exc.kind})
                except Exception as exc:  # noqa: BLE001 - the client hears of it; the log keeps the traceback
                    logging.getLogger("lima_core.hostagent").exception("suspend failed")
                    self._answer(500, {"message": f"{type(exc).__name__}: {exc}", "kind": "LimaError"})
                finally:
                    agent.suspend_answered()

            def _answer(self, code: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(code)
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
