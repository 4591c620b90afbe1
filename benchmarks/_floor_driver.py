"""The floor for B2 and B3: an external driver written by hand with grpcio and protoc's stubs.

It is what an author would write without lima-core: protoc's ``driver_pb2``
and ``driver_pb2_grpc`` for ``proto/driver.proto`` (made by
:func:`generate_stubs` into a directory of the benchmark's own), a servicer
answering ``Info`` and ``SSHAddress`` with fixed responses, and a server on
``DIR/floor.drv.sock`` until SIGTERM. It imports no lima-core code, so it
measures the same against any lima-core tree. lima-core's overhead is what
lies above it.

    python _floor_driver.py STUBS_DIR --inst-dir DIR RESPONSES.json

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
from typing import Any

MAX_WORKERS = 16  # as lima_core.external.server
NAME = "floor"


def generate_stubs(out: Path) -> Path:
    """protoc's ``driver_pb2`` and ``driver_pb2_grpc`` for proto/driver.proto, in *out* (returned)."""
    from grpc_tools import protoc

    repo = Path(__file__).resolve().parents[1]
    include = Path(protoc.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    argv = ["protoc", f"-I{repo / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
            "driver.proto"]
    if protoc.main(argv) != 0:
        raise RuntimeError("protoc failed on proto/driver.proto")
    return out


def import_stubs(stubs: Path) -> tuple[Any, Any]:
    """(driver_pb2, driver_pb2_grpc) from *stubs*."""
    if str(stubs) not in sys.path:
        sys.path.insert(0, str(stubs))
    import driver_pb2
    import driver_pb2_grpc

    return driver_pb2, driver_pb2_grpc


def socket_path(inst_dir: Path) -> Path:
    return inst_dir / f"{NAME}.drv.sock"


def main(argv: list[str]) -> int:
    stubs, _flag, inst_dir, responses = argv
    import grpc

    driver_pb2, driver_pb2_grpc = import_stubs(Path(stubs))

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
