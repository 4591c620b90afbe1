"""lima-driver-protoonly: an external driver written from proto/driver.proto alone.

It stands for a driver written in Go or Rust: it imports grpc and the stubs
generated from the .proto (``driver_pb2``, ``driver_pb2_grpc``), never
lima_core. It speaks the wire contract of docs/wire-contract.md:

    lima-driver-protoonly --inst-dir DIR    serve on DIR/protoonly.drv.sock until SIGTERM
    lima-driver-protoonly --inspect-status  one JSON string of base64 instance JSON in, the same out
    lima-driver-protoonly vm DIR            (internal) the "VM"

Its VM is a child process that reads this boot's instance id from cidata.iso
and writes it where lima's fake ssh looks for ``/run/lima-ssh-ready`` and ``/run/lima-boot-done``
(``fakevm-root/run/``), marks itself running (``fakevm.running``) and runs
until SIGTERM. Errors are plain gRPC statuses (code UNKNOWN, the message as
details), as a Go driver's are. Every --inspect-status call is logged to
``protoonly-inspect.log`` in the instance directory, so tests can see it ran.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

NAME = "protoonly"
RUNNING = "fakevm.running"  # what lima_core.testing.fakessh checks
MARKERS = [Path("fakevm-root") / "run" / name for name in ("lima-ssh-ready", "lima-boot-done")]
IID = re.compile(rb"LIMA_CIDATA_IID=(iid-[0-9]+)")


# -- the VM -----------------------------------------------------------------------------------


def run_vm(inst_dir: Path) -> int:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    iso = inst_dir / "cidata.iso"
    if iso.exists():
        m = IID.search(iso.read_bytes())  # lima.env is stored uncompressed in the ISO
        for marker in MARKERS if m else []:
            (inst_dir / marker).parent.mkdir(parents=True, exist_ok=True)
            (inst_dir / marker).write_text(m.group(1).decode() + "\n")
    marker = inst_dir / RUNNING
    marker.write_text(f"{os.getpid()}\n")
    try:
        while not stopping.wait(0.1):
            pass
    finally:
        marker.unlink(missing_ok=True)
    return 0


# -- the driver -------------------------------------------------------------------------------


def serve(inst_dir: Path) -> int:
    import driver_pb2 as pb
    import driver_pb2_grpc as rpc
    import grpc
    from google.protobuf.empty_pb2 import Empty

    pid_path = inst_dir / f"{NAME}.pid"  # the host reads <vmType>.pid

    def vm_pid() -> int | None:
        try:
            pid = int(pid_path.read_text())
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None
            return pid
        except (OSError, ValueError):
            return None

    class Driver(rpc.DriverServicer):
        def __init__(self) -> None:
            self.instance: dict | None = None
            self.proc: subprocess.Popen | None = None

        def Info(self, request, context):
            info = {"name": NAME, "vsockPort": 0, "virtioPort": "",
                    "instanceDir": self.instance["dir"] if self.instance else "",
                    "features": {"dynamicSSHAddress": False, "staticSSHPort": False,
                                 "skipSocketForwarding": False, "noCloudInit": False,
                                 "rosettaEnabled": False, "rosettaBinFmt": False}}
            return pb.InfoResponse(info_json=json.dumps(info).encode())

        def Configure(self, request, context):
            inst = json.loads(request.instance_config_json)
            config = inst.setdefault("config", {})
            config.setdefault("vmType", NAME)
            if config.get("mountType") in (None, "", "default"):
                config["mountType"] = "reverse-sshfs"
            self.instance = inst
            return pb.SetConfigResponse(instance_config_json=json.dumps(inst).encode())

        def Validate(self, request, context):
            opts = ((self.instance or {}).get("config", {}).get("vmOpts") or {}).get(NAME) or {}
            if opts.get("invalid"):
                context.abort(grpc.StatusCode.UNKNOWN, str(opts["invalid"]))
            return Empty()

        def Create(self, request, context):
            ident = inst_dir / f"{NAME}-identifier"
            if not ident.exists():
                ident.write_text(os.urandom(8).hex() + "\n")
            return Empty()

        def CreateDisk(self, request, context):
            image, disk = inst_dir / "image", inst_dir / "disk"
            if image.exists() and not disk.exists():
                image.rename(disk)
            return Empty()

        def BootScripts(self, request, context):
            return pb.BootScriptsResponse(scripts={f"boot.Linux/10-{NAME}.sh": b"#!/bin/sh\necho protoonly\n"})

        def Start(self, request, context):
            if vm_pid() is not None:
                yield pb.StartResponse(success=False, error=f"the {NAME} VM is already running")
                context.abort(grpc.StatusCode.UNKNOWN, f"the {NAME} VM is already running")
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "vm", str(inst_dir)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            pid_path.write_text(f"{proc.pid}\n")
            deadline = time.monotonic() + 10
            while not (inst_dir / RUNNING).exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self.proc = proc
            yield pb.StartResponse(success=True)  # boot has begun
            while proc.poll() is None:
                if not context.is_active():  # the host went away without Stop: end the VM
                    proc.kill()
                    proc.wait()
                    return
                time.sleep(0.1)
            if proc.returncode != 0:
                yield pb.StartResponse(success=False, error=f"the {NAME} VM exited with status {proc.returncode}")
            yield pb.StartResponse(success=True)  # the VM has ended

        def Stop(self, request, context):
            pid = vm_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while vm_pid() == pid and time.monotonic() < deadline:
                    time.sleep(0.02)
                if vm_pid() == pid:
                    os.kill(pid, signal.SIGKILL)
            pid_path.unlink(missing_ok=True)
            return Empty()

        def Delete(self, request, context):
            return Empty()

        def SSHAddress(self, request, context):
            return pb.SSHAddressResponse(address="127.0.0.1")

        def ForwardGuestAgent(self, request, context):
            return pb.ForwardGuestAgentResponse(should_forward=True)

        def GuestAgentConn(self, request, context):
            return Empty()

        def AdditionalSetupForSSH(self, request, context):
            return Empty()

        def CreateSnapshot(self, request, context):
            context.abort(grpc.StatusCode.UNKNOWN, "unimplemented")  # what Lima's drivers send

        # RunGUI, display and the other snapshot RPCs: the generated base answers UNIMPLEMENTED.

    assert "lima_core" not in sys.modules, "a proto-only driver must not import lima_core"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    rpc.add_DriverServicer_to_server(Driver(), server)
    sock = inst_dir / f"{NAME}.drv.sock"
    sock.unlink(missing_ok=True)
    server.add_insecure_port(f"unix://{sock}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"{NAME}: serving on {sock}", file=sys.stderr, flush=True)
    stop.wait()
    server.stop(5).wait()
    sock.unlink(missing_ok=True)
    return 0


def inspect_status() -> int:
    """One JSON string holding base64 of the instance JSON, in and out; "" status = read the pid files."""
    inst = json.loads(base64.b64decode(json.loads(sys.stdin.read())))
    inst["status"] = ""
    log = Path(inst.get("dir", "")) / f"{NAME}-inspect.log"
    if log.parent.is_dir():
        with open(log, "a") as f:
            f.write(f"{time.time()} {inst.get('name')}\n")
    sys.stdout.write(json.dumps(base64.b64encode(json.dumps(inst).encode()).decode()) + "\n")
    return 0


def main(argv: list[str]) -> int:
    # Go's flag package: -x and --x, --x=v and --x v.
    if argv[:1] == ["vm"]:
        return run_vm(Path(argv[1]))
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].lstrip("-").partition("=")
        if name == "inspect-status":
            flags[name] = True
        elif name == "inst-dir":
            if not eq:
                i += 1
                value = argv[i]
            flags[name] = value
        else:
            print(f"flag provided but not defined: -{name}", file=sys.stderr)
            return 2
        i += 1
    if flags.get("inspect-status"):
        return inspect_status()
    if not flags.get("inst-dir"):
        print("--inst-dir is required", file=sys.stderr)
        return 0  # as Lima's Serve: it logs and returns
    return serve(Path(str(flags["inst-dir"])).absolute())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
