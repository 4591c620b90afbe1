"""The checked-in protoc modules (lima_core/protocol/_gen) match proto/*.proto as protoc reads it now.

A change to a .proto file without ``scripts/generate-proto`` fails here: the file descriptors embedded in
the ``*_pb2`` modules are compared with protoc's, and each ``*_pb2_grpc`` module must serve exactly the
RPCs the descriptor declares. With the pinned grpcio-tools installed, the files are compared byte for byte.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2

from lima_core.protocol import rpc
from lima_core.protocol._gen import driver_pb2, driver_pb2_grpc, lima_core_ext_pb2, lima_core_ext_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
GEN = REPO / "lima_core" / "protocol" / "_gen"
GENERATOR = REPO / "scripts" / "generate-proto"
MODULES = {"driver.proto": (driver_pb2, driver_pb2_grpc), "lima_core_ext.proto": (lima_core_ext_pb2, lima_core_ext_pb2_grpc)}
STALE = "lima_core/protocol/_gen is stale: run scripts/generate-proto"


def _pinned() -> str:
    match = re.search(r'^PINNED = "([^"]+)"', GENERATOR.read_text(), flags=re.M)
    assert match, "scripts/generate-proto names no PINNED grpcio-tools release"
    return match.group(1)


@pytest.fixture(scope="module")
def protoc_descriptors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("descriptors") / "set.pb"
    include = Path(protoc.__file__).parent / "_proto"
    protos = sorted(p.name for p in (REPO / "proto").glob("*.proto"))
    assert protoc.main(["protoc", f"-I{REPO / 'proto'}", f"-I{include}", f"--descriptor_set_out={out}", *protos]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    for f in files:
        _drop_json_names(f.message_type)
    return {f.name: f for f in files}


def _drop_json_names(messages) -> None:
    """protoc's descriptor set spells out each field's derived ``json_name``; generated code leaves it out."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


def test_every_proto_file_has_generated_modules(protoc_descriptors) -> None:
    assert set(protoc_descriptors) == set(MODULES), STALE


@pytest.mark.parametrize("name", sorted(MODULES))
def test_embedded_descriptor_is_protocs(name: str, protoc_descriptors) -> None:
    embedded = descriptor_pb2.FileDescriptorProto.FromString(MODULES[name][0].DESCRIPTOR.serialized_pb)
    assert embedded == protoc_descriptors[name], STALE


class _RecordingChannel:
    """Enough of a grpc.Channel for a generated stub to name the methods it calls."""

    def __init__(self) -> None:
        self.methods: dict[str, str] = {}

    def _record(self, kind: str):
        def make(path: str, *args, **kwargs):
            self.methods[path] = kind
            return lambda *a, **k: None
        return make

    def __getattr__(self, kind: str):
        if kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            return self._record(kind)
        raise AttributeError(kind)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_grpc_module_serves_the_descriptors_rpcs(name: str, protoc_descriptors) -> None:
    pb, pb_grpc = MODULES[name]
    expected = {}
    for service in protoc_descriptors[name].service:
        full = f"{protoc_descriptors[name].package}.{service.name}".lstrip(".")
        for m in service.method:
            kind = f"{'stream' if m.client_streaming else 'unary'}_{'stream' if m.server_streaming else 'unary'}"
            expected[f"/{full}/{m.name}"] = kind
        channel = _RecordingChannel()
        getattr(pb_grpc, f"{service.name}Stub")(channel)
        got = {p: k for p, k in channel.methods.items() if p.startswith(f"/{full}/")}
        assert got == {p: k for p, k in expected.items() if p.startswith(f"/{full}/")}, STALE


def test_every_rpc_has_a_hook_or_a_handler() -> None:
    """The table covers the services: each RPC is a hook's, or Start / GetProtocolInfo (served apart)."""
    served = {(rpc.EXT_SERVICE if w.extension else rpc.SERVICE, w.rpc) for w in rpc.WIRE.values()}
    declared = {(s.full_name, m.name) for pb, _ in MODULES.values() for s in pb.DESCRIPTOR.services_by_name.values()
                for m in s.methods}
    assert declared - served == {(rpc.EXT_SERVICE, "GetProtocolInfo")}
    assert served <= declared


def test_generated_files_are_what_the_pinned_protoc_writes(tmp_path: Path) -> None:
    pinned = _pinned()
    have = importlib.metadata.version("grpcio-tools")
    if have != pinned:
        pytest.skip(f"byte comparison needs grpcio-tools=={pinned} (have {have}); the descriptor tests cover staleness")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True)
    written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    checked_in = {p.name: p.read_bytes() for p in GEN.iterdir() if p.is_file()}
    assert written == checked_in, STALE


def test_a_unary_call_through_the_generated_stubs(tmp_path: Path) -> None:
    """The stubs and servicers of rpc.py carry a message both ways over a real channel."""
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    answers = {"Info": lambda req, ctx: driver_pb2.InfoResponse(info_json=b'{"name":"x"}')}
    rpc.add_servicers(server, answers, {})
    sock = tmp_path / "s.sock"
    server.add_insecure_port(rpc.unix_target(str(sock)))
    server.start()
    try:
        with rpc.channel(str(sock)) as chan:
            driver, ext = rpc.stubs(chan)
            assert driver.Info(rpc.Empty(), timeout=5).info_json == b'{"name":"x"}'
            with pytest.raises(grpc.RpcError) as err:
                driver.Stop(rpc.Empty(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(0)
