"""The CLI's side of the host agent's HTTP API on ``ha.sock`` (see ``lima_core.hostagent.infoserver``)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from . import filenames
from .errors import InstanceError, LimaError, error_class


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(inst_dir: Path, method: str, path: str, timeout: float) -> dict[str, Any]:
    """*method* *path* on the instance's ``ha.sock``; the JSON answer.

    :raises LimaError: the host agent answered with an error (its class and
        message), or could not be reached or did not answer within *timeout*.
    """
    sock = inst_dir / filenames.HOST_AGENT_SOCK
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request(method, path, headers={"Content-Length": "0"})
        response = conn.getresponse()
        body = response.read()
    except TimeoutError:
        raise InstanceError(f"the host agent of {inst_dir.name!r} did not answer {method} {path} within "
                            f"{timeout:g} s; see {inst_dir / filenames.HOST_AGENT_STDERR_LOG}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise InstanceError(f"cannot reach the host agent of {inst_dir.name!r} on {sock}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    finally:
        conn.close()
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {"message": body.decode(errors="replace").strip()}
    if not isinstance(data, dict):
        data = {"message": str(data)}
    if response.status != 200:
        message = str(data.get("message") or f"HTTP {response.status} {response.reason}")
        cls = error_class(str(data.get("kind") or "InstanceError"))
        raise (cls if issubclass(cls, LimaError) else InstanceError)(message)
    return data
