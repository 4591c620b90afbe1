"""lima-guestagent: lima-core's guest agent, and the protocol the host agent speaks to it.

The agent runs in the guest as root. It reports the guest's listening TCP and
UDP sockets (IPv4 and IPv6) as they appear and disappear, and carries the
connections the host agent forwards, multiplexed over one connection: a
virtio-serial port (qemu), a vsock port (vz, wsl2), or a unix socket that the
host agent forwards over SSH. The protocol is written down in
``docs/guest-agent.md``.

This package is delivered to the guest as one file (a zip application built
by ``lima_core.cidata.guestagent``) and must run on every guest cloud-init
runs on: Python 3.6 or later, standard library only, and no import from the
rest of lima_core. The host agent imports :mod:`.wire` and :mod:`.mux` from
here, so both ends share one implementation of the protocol.
"""

#: the version of lima-guestagent; the host agent logs it
VERSION = "1.0"

#: the agent's unix socket in the guest (Lima's path)
SOCKET = "/run/lima-guestagent.sock"
#: the name of the virtio-serial port Lima's qemu driver gives the agent
VIRTIO_PORT = "io.lima-vm.guest_agent.0"
