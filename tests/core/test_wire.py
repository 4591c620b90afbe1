"""Wire compatibility: peers built from proto/driver.proto alone, with no lima_core code.

One stands for Lima's host calling our driver; the other for a driver built for
Lima (plain protocol, Go-style errors) being called by our host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lima_core.errors import DriverError, UnsupportedOperation
from lima_core.external import supervisor
from lima_core.external.client import LIMA_HOOKS, connect
from lima_core.testing.conformance import new_instance

REPO = Path(__file__).resolve().parents[2]


def run_peer(stubs: Path, code: str, *args: str, background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(stubs)}
    cmd = [sys.executable, "-c", textwrap.dedent(code), *args]
    if background:
        return subprocess.Popen(cmd, env=env, cwd=stubs, stderr=subprocess.PIPE)
    return subprocess.run(cmd, env=env, cwd=stubs, capture_output=True, text=True, timeout=60)


LIMA_CLIENT = """
import base64, json, sys
import grpc
import driver_pb2 as pb, driver_pb2_grpc as rpc
from google.protobuf.empty_pb2 import Empty
sock, inst_json = sys.argv[1], sys.argv[2]
stub = rpc.DriverStub(grpc.insecure_channel("unix://" + sock))
out = {}
def call(name, fn):
    try:
        out[name] = fn()
    except grpc.RpcError as e:
        out[name] = {"code": e.code().name, "details": e.details()}
info = stub.Info(Empty(), timeout=10)
call("Info", lambda: json.loads(info.info_json))
call("Configure", lambda: json.loads(stub.Configure(pb.SetConfigRequest(instance_config_json=inst_json.encode()), timeout=10).instance_config_json))
for name in ("Validate", "Create", "CreateDisk", "AdditionalSetupForSSH", "GuestAgentConn", "RunGUI", "Delete"):
    call(name, lambda n=name: str(getattr(stub, n)(Empty(), timeout=10)))
call("BootScripts", lambda: {k: v.decode() for k, v in stub.BootScripts(Empty()).scripts.items()})
call("SSHAddress", lambda: stub.SSHAddress(Empty()).address)
call("ForwardGuestAgent", lambda: stub.ForwardGuestAgent(Empty()).should_forward)
call("ChangeDisplayPassword", lambda: str(stub.ChangeDisplayPassword(pb.ChangeDisplayPasswordRequest(password="pw123456"))))
call("GetDisplayConnection", lambda: stub.GetDisplayConnection(Empty()).connection)
call("CreateSnapshot", lambda: str(stub.CreateSnapshot(pb.CreateSnapshotRequest(tag="t1"))))
call("ListSnapshots", lambda: stub.ListSnapshots(Empty()).snapshots)
call("ApplySnapshot", lambda: str(stub.ApplySnapshot(pb.ApplySnapshotRequest(tag="t1"))))
call("DeleteSnapshot", lambda: str(stub.DeleteSnapshot(pb.DeleteSnapshotRequest(tag="t1"))))
call("ApplyMissing", lambda: str(stub.ApplySnapshot(pb.ApplySnapshotRequest(tag="missing"))))
stream = stub.Start(Empty())
first = next(stream)
out["Start.first"] = [first.success, first.error]
call("Stop", lambda: str(stub.Stop(Empty(), timeout=30)))
out["Start.rest"] = [[m.success, m.error] for m in stream]
out["lima_core_imported"] = "lima_core" in sys.modules
print(json.dumps(out))
"""


def test_lima_client_calls_every_rpc_of_our_driver(proto_modules: Path, driver_bin: Path, short_tmp: Path) -> None:
    inst_dir = short_tmp / "inst"
    inst = new_instance(inst_dir, "fake", {"aNewerLimaField": True})
    inst.extra["autoStartedIdentifier"] = "x"
    server = supervisor.ensure_server(str(driver_bin / "lima-driver-fake"), "fake", inst_dir)
    try:
        proc = run_peer(proto_modules, LIMA_CLIENT, str(server.socket), json.dumps(inst.to_json()))
    finally:
        supervisor.stop_servers(inst_dir)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["lima_core_imported"] is False
    assert out["Info"]["name"] == "fake" and "features" in out["Info"]
    assert out["Configure"]["config"]["aNewerLimaField"] is True
    assert out["Configure"]["config"]["mountType"] == "reverse-sshfs"  # the driver's default came back
    for name in ("Validate", "Create", "CreateDisk", "AdditionalSetupForSSH", "GuestAgentConn", "Delete",
                 "ChangeDisplayPassword", "CreateSnapshot", "ApplySnapshot", "DeleteSnapshot", "Stop"):
        assert out[name] == "", (name, out[name])
    assert out["RunGUI"] == {"code": "UNIMPLEMENTED", "details": "driver 'fake' does not support a GUI"}
    assert out["ApplyMissing"] == {"code": "UNKNOWN", "details": "snapshot 'missing' not found"}
    assert out["BootScripts"] == {"boot.Linux/10-fake.sh": "#!/bin/sh\necho fake driver boot script\n"}
    assert out["SSHAddress"] == "127.0.0.1" and out["ForwardGuestAgent"] is True
    assert out["GetDisplayConnection"] == "5900"
    assert out["ListSnapshots"].splitlines()[0].split()[:2] == ["ID", "TAG"]
    assert out["Start.first"] == [True, ""]
    assert out["Start.rest"] == [[True, ""]]  # the final "VM ended" message after Stop


LIMA_DRIVER = """
import json, sys, time, signal, os
from concurrent import futures
import grpc
import driver_pb2 as pb, driver_pb2_grpc as rpc
from google.protobuf.empty_pb2 import Empty

class Go(rpc.DriverServicer):
    # Errors as grpc-go sends a plain Go error: code Unknown, desc = the message.
    def Info(self, req, ctx):
        return pb.InfoResponse(info_json=json.dumps({"name": "golike", "vsockPort": 0, "virtioPort": "",
            "features": {"dynamicSSHAddress": True, "staticSSHPort": True, "skipSocketForwarding": False,
                         "noCloudInit": False, "rosettaEnabled": False, "rosettaBinFmt": False}}).encode())
    def Configure(self, req, ctx):
        inst = json.loads(req.instance_config_json)
        inst["config"]["vmType"] = "golike"
        inst["config"].setdefault("mountType", "virtiofs")
        return pb.SetConfigResponse(instance_config_json=json.dumps(inst).encode())
    def Validate(self, req, ctx):
        ctx.abort(grpc.StatusCode.UNKNOWN, "golike needs macOS 13 or later")
    def CreateSnapshot(self, req, ctx):
        ctx.abort(grpc.StatusCode.UNKNOWN, "unimplemented")
    def SSHAddress(self, req, ctx):
        return pb.SSHAddressResponse(address="192.168.5.15")
    def Start(self, req, ctx):
        yield pb.StartResponse(success=True)
        yield pb.StartResponse(success=False, error="vm crashed")
        yield pb.StartResponse(success=True)

inst_dir = sys.argv[sys.argv.index("--inst-dir") + 1]
server = grpc.server(futures.ThreadPoolExecutor(4))
rpc.add_DriverServicer_to_server(Go(), server)
server.add_insecure_port("unix://" + os.path.join(inst_dir, "golike.drv.sock"))
server.start()
signal.signal(signal.SIGTERM, lambda *a: server.stop(0))
server.wait_for_termination()
"""


def test_our_host_drives_a_plain_lima_driver(proto_modules: Path, short_tmp: Path) -> None:
    exe = short_tmp / "lima-driver-golike"
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={proto_modules} exec {sys.executable} -c '{LIMA_DRIVER}' \"$@\"\n")
    exe.chmod(0o755)
    inst_dir = short_tmp / "inst"
    inst = new_instance(inst_dir, "golike", {"futureField": 1})
    try:
        host = connect(str(exe), "golike", inst_dir)
        assert host.implemented == LIMA_HOOKS  # no extension service: the plain Lima hook set
        assert host.info().features.dynamic_ssh_address is True
        host.configure(inst)
        assert inst.config is not None and inst.config.mount_type == "virtiofs"
        assert inst.config.extra["futureField"] == 1
        with pytest.raises(DriverError) as excinfo:
            host.validate()
        assert str(excinfo.value) == "golike needs macOS 13 or later"  # no "rpc error: code = Unknown desc ="
        with pytest.raises(UnsupportedOperation, match="driver 'golike' does not support create snapshot"):
            host.create_snapshot(tag="t")
        assert host.ssh_address() == "192.168.5.15"
        with pytest.raises(UnsupportedOperation):
            host.run_gui()  # Unimplemented in the servicer base
        handle = host.start()
        assert handle.next(timeout=5).error == "vm crashed"  # type: ignore[union-attr]
        assert handle.next(timeout=5).ended  # type: ignore[union-attr]
        assert host.check_host() is None  # extension absent: neutral
    finally:
        supervisor.stop_servers(inst_dir, force=True)
