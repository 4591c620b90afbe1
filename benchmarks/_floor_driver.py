"""The floor for B2 and B3: an external driver written by hand with grpcio and protoc's stubs.

It is what an author would write without lima-core's framework: protoc's
``driver_pb2`` and ``driver_pb2_grpc`` for ``proto/driver.proto`` (the very
modules lima-core ships in ``lima_core/protocol/_gen``; importing them runs
no other lima-core code), a servicer answering ``Info`` and ``SSHAddress``
with fixed responses, and a server on ``DIR/floor.drv.sock`` until SIGTERM.
lima-core's overhead is what lies above it.

    python _floor_driver.py --inst-dir DIR RESPONSES.json

RESPONSES.json holds ``{"info_json": "<hex>", "address": "..."}``. The server
uses the thread pool size of lima-core's driver server.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

MAX_WORKERS = 16  # as lima_core.external.server
NAME = "floor"


def socket_path(inst_dir: Path) -> Path:
    return inst_dir / f"{NAME}.drv.sock"


def main(argv: list[str]) -> int:
    _flag, inst_dir, responses = argv
    import grpc

    from lima_core.protocol._gen import driver_pb2, driver_pb2_grpc

    table = json.loads(Path(responses).read_text())
    info = driver_pb2.InfoResponse(info_json=bytes.fromhex(table["info_json"]))
    address = driver_pb2.SSHAddressResponse(address=table["address"])

    class Driver(driver_pb2_grpc.DriverServicer):
        def Info(self, request, context):  # noqa: N802 - the RPC's name
            return info

        def SSHAddress(self, request, context):  # noqa: N802
            return address

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
    driver_pb2_grpc.add_DriverServicer_to_server(Driver(), server)
    server.add_insecure_port(f"unix://{socket_path(Path(inst_dir))}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
