"""The floor for B2: a bare grpcio server and client on a unix socket, answering fixed bytes.

``python -m benchmarks._grpc_floor SOCKET PAYLOADS.json`` serves each
``{"/Service/Method": "<hex>"}`` as a unary method that ignores its request
and returns those bytes: no protobuf, no driver, no session, nothing but
grpcio. The server uses the same thread pool size as lima-core's driver
server.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent import futures

import grpc

MAX_WORKERS = 16  # as lima_core.external.server


def serve(sock: str, payloads: dict[str, bytes]) -> None:
    handlers = {}
    for method, payload in payloads.items():
        service, name = method.strip("/").split("/")
        handlers.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
            (lambda p: lambda request, context: p)(payload))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
    for service, methods in handlers.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
    server.add_insecure_port(f"unix://{sock}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print("ready", flush=True)
    stop.wait()
    server.stop(0).wait()


class Client:
    """Bare unary calls: bytes in, bytes out."""

    def __init__(self, sock: str) -> None:
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self._calls: dict[str, grpc.UnaryUnaryMultiCallable] = {}

    def call(self, method: str, request: bytes = b"") -> bytes:
        stub = self._calls.get(method)
        if stub is None:
            stub = self._calls[method] = self.channel.unary_unary(method)
        return stub(request, timeout=10)

    def close(self) -> None:
        self.channel.close()


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        table = {k: bytes.fromhex(v) for k, v in json.load(f).items()}
    serve(sys.argv[1], table)
