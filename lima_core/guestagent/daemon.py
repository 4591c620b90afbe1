"""``lima-guestagent daemon``: the agent's event loop in the guest.

It listens where the host can reach it: a virtio-serial port (one
connection at a time; the port is reopened whenever the host side goes
away), a vsock port (only the host, CID 2, may connect), and always the unix
socket ``/run/lima-guestagent.sock`` (the host agent forwards it over SSH
when the driver offers no direct connection). Every session gets the
current listening sockets at once after HELLO, then each change as it
happens: the sockets are listed when the kernel's tracepoints say a socket
started or stopped listening (:mod:`.trigger`), else every *tick* seconds.
"""

import asyncio
import collections
import errno
import logging
import os
import pwd
import signal
import socket
import sys

from . import SOCKET, VERSION, mux, ports, trigger, wire

log = logging.getLogger("lima-guestagent")

DEFAULT_SOCKET = SOCKET
#: seconds between listings without the tracepoint trigger
DEFAULT_TICK = 0.25
#: seconds between listings with it (for what no tracepoint reports: a UDP socket closing)
DEFAULT_IDLE_TICK = 1.0
#: after a tracepoint fired, the listing waits this long (a bind is followed by listen(), events come in bursts)
TRIGGER_DELAY = 0.01
VIRTIO_PORTS = "/dev/virtio-ports"
VSOCK_HOST_CID = 2
#: how often the virtio-serial port is reopened while no host is connected
VIRTIO_RETRY = 0.2


class Agent(object):
    """What every session shares: the listening sockets, as last listed, and when to list them again.

    With the tracepoint trigger (:mod:`.trigger`) the sockets are listed
    :data:`TRIGGER_DELAY` after an event, and every *idle_tick* seconds for
    what no event reports (a UDP socket closing); without it, every *tick*.
    """

    def __init__(self, loop, lister, tick=DEFAULT_TICK, idle_tick=DEFAULT_IDLE_TICK, user=None, use_trigger=True):
        self.loop = loop
        self.lister = lister
        self.tick = tick
        self.idle_tick = idle_tick
        #: connect to unix sockets as this user (name), as an SSH forward of that user would
        self.user = user
        self.sessions = set()
        self.current = frozenset()
        self.trigger = None
        self.why_polling = "disabled"
        if use_trigger:
            self.trigger, self.why_polling = trigger.open_trigger()
        self._soon = None

    @property
    def interval(self):
        return self.idle_tick if self.trigger is not None else self.tick

    def info(self):
        return {"version": wire.PROTOCOL_VERSION, "agent": VERSION, "python": sys.version.split()[0],
                "pid": os.getpid(), "tick": self.interval, "discovery": dict(self.lister.how),
                "trigger": "tracefs" if self.trigger is not None else "none (%s)" % self.why_polling}

    def start(self):
        self.scan()
        self.loop.call_later(self.interval, self._periodic)
        if self.trigger is not None:
            self.loop.add_reader(self.trigger.fd, self._fired)

    def close(self):
        if self.trigger is not None:
            self.loop.remove_reader(self.trigger.fd)
            self.trigger.close()
            self.trigger = None

    def _periodic(self):
        self.scan()
        self.loop.call_later(self.interval, self._periodic)

    def _fired(self):
        if self.trigger.drain() and self._soon is None:
            self._soon = self.loop.call_later(TRIGGER_DELAY, self._scan_soon)

    def _scan_soon(self):
        self._soon = None
        self.scan()

    def scan(self):
        try:
            now = frozenset(self.lister.listening())
        except Exception as exc:  # noqa: BLE001 - reported to the host, the agent goes on
            log.warning("listing sockets failed: %s", exc)
            for session in list(self.sessions):
                session.report_error("listing the guest's sockets failed: %s" % exc)
            return
        if now != self.current:
            added, removed = now - self.current, self.current - now
            self.current = now
            log.debug("listening: +%s -%s", sorted(added), sorted(removed))
            for session in list(self.sessions):
                session.send_ports(added, removed)

    def session(self, peer=""):
        return GuestSession(self, peer)


def _listeners(ports_):
    return sorted([proto, ip, port] for proto, ip, port in ports_)


class GuestSession(mux.Session):
    """The guest's end of one host connection."""

    def __init__(self, agent, peer=""):
        mux.Session.__init__(self, agent.loop, synced=False, logger=log)
        self.agent = agent
        self.peer = peer
        self.ready = False
        #: done when the connection is gone
        self.ended = agent.loop.create_future()

    def on_control(self, kind, payload):
        if kind == wire.HELLO:
            request = wire.load(kind, payload)
            versions = request.get("versions") or []
            if wire.PROTOCOL_VERSION not in versions:
                self.send(wire.control(wire.ERROR, {"message": "lima-guestagent speaks protocol version %d, the "
                                                    "host %s" % (wire.PROTOCOL_VERSION, versions)}))
                self.close()
                return
            self.send(wire.hello(self.agent.info()))
            self.ready = True
            self.agent.sessions.add(self)
            log.info("host connected%s", " (%s)" % self.peer if self.peer else "")
            self.send_ports(self.agent.current, (), first=True)
        elif kind == wire.ERROR:
            log.warning("the host reports: %s", wire.load(kind, payload).get("message"))

    def on_open(self, channel_id, request):
        proto = request.get("proto")
        address = str(request.get("address") or "")
        if proto in ("tcp", "unix"):
            channel = mux.StreamChannel(self, channel_id)
        elif proto == "udp":
            channel = mux.DatagramChannel(self, channel_id)
        else:
            mux.DatagramChannel(self, channel_id).fail("unknown proto %r" % proto)
            return
        self.loop.create_task(self._connect(channel, proto, address))

    async def _connect(self, channel, proto, address):
        loop = self.loop
        try:
            if proto == "unix":
                sock = connect_unix(address, self.agent.user)
                await loop.create_unix_connection(lambda: mux.StreamEnd(channel), sock=sock)
                return
            host, port = mux.dial_address(address)
            if proto == "tcp":
                # The transport is made while the connection is being set up: what the host sends waits in
                # its buffer, and a refusal ends the channel with the error (one loop turn less per
                # connection, which counts in an emulated guest).
                sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                code = sock.connect_ex((host, port))
                if code not in (0, errno.EINPROGRESS):
                    sock.close()
                    raise OSError(code, os.strerror(code))
                await loop.create_connection(lambda: mux.StreamEnd(channel), sock=sock)
            else:
                await loop.create_datagram_endpoint(lambda: mux.DatagramEnd(channel), remote_addr=(host, port))
        except (OSError, ValueError) as exc:
            if not channel.finished:
                channel.fail("%s %s: %s" % (proto, address, getattr(exc, "strerror", None) or exc))

    def send_ports(self, added, removed, first=False):
        """A PORTS frame; the first of a session is sent even when there is no listener (it is the set)."""
        if self.ready and (added or removed or first):
            self.send(wire.control(wire.PORTS, {"added": _listeners(added), "removed": _listeners(removed)}))

    def report_error(self, message):
        if self.ready:
            self.send(wire.control(wire.ERROR, {"message": message}))

    def lost(self, exc):
        self.agent.sessions.discard(self)
        if not self.ended.done():
            self.ended.set_result(exc)
        if self.ready:
            log.info("host disconnected%s", ": %s" % exc if exc else "")


def connect_unix(path, user):
    """A stream socket connected to *path* with *user*'s permissions (as root, with the user's ids for
    the connect; as anyone else, with one's own)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if user and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            groups = os.getgroups()
            os.setgroups(os.getgrouplist(user, entry.pw_gid))
            os.setegid(entry.pw_gid)
            os.seteuid(entry.pw_uid)
            try:
                sock.connect(path)
            finally:
                os.seteuid(0)
                os.setegid(0)
                os.setgroups(groups)
        else:
            sock.connect(path)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


# -- listeners ------------------------------------------------------------------------------


async def serve_unix(agent, path, owner=None):
    """The unix socket: made 0600 (and given to *owner*, a uid, so that user's SSH can forward it), and
    put in place only once it listens."""
    tmp = os.path.join(os.path.dirname(path), ".lga%d" % os.getpid())  # short: unix socket paths are limited
    for stale in (path, tmp):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(tmp)
    finally:
        os.umask(old)
    if owner is not None and owner >= 0:
        os.chown(tmp, owner, -1)
    sock.listen(16)
    os.rename(tmp, path)
    server = await agent.loop.create_unix_server(lambda: agent.session("unix"), sock=sock)
    log.info("listening on %s", path)
    return server


async def serve_vsock(agent, port):
    family = getattr(socket, "AF_VSOCK", None)
    if family is None:
        raise SystemExit("lima-guestagent: vsock needs Python 3.7 or later")
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((socket.VMADDR_CID_ANY, port))
    sock.listen(16)
    sock.setblocking(False)
    log.info("listening on vsock port %d", port)
    loop = agent.loop
    while True:
        conn, (cid, _port) = await loop.sock_accept(sock)
        if cid != VSOCK_HOST_CID:
            log.warning("refused a vsock connection from CID %d (only the host, CID %d, may connect)", cid,
                        VSOCK_HOST_CID)
            conn.close()
            continue
        await loop.create_connection(lambda: agent.session("vsock"), sock=conn)


async def serve_virtio(agent, name):
    """The virtio-serial port: one session at a time, for as long as the host side stays connected."""
    path = os.path.join(VIRTIO_PORTS, name)
    loop = agent.loop
    announced = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if not announced:
                log.warning("cannot open %s: %s; trying again", path, exc.strerror)
                announced = True
            await asyncio.sleep(1.0)
            continue
        if not announced:
            log.info("listening on %s", path)
            announced = True
        ended = loop.create_future()
        session = agent.session("virtio")
        FdTransport(loop, fd, session, ended)
        # A host already connected may have greeted an earlier reader of the port (this agent before a
        # restart): asked to, it greets again.
        session.send(wire.hello(dict(agent.info(), announce=True)))
        await ended
        await asyncio.sleep(VIRTIO_RETRY)


class FdTransport(asyncio.Transport):
    """A transport over a character device (a virtio-serial port): read returning nothing means the
    host side is not connected."""

    max_size = 256 << 10

    def __init__(self, loop, fd, protocol, ended):
        asyncio.Transport.__init__(self)
        self._loop = loop
        self._fd = fd
        self._protocol = protocol
        self._ended = ended
        self._chunks = collections.deque()
        self._size = 0
        self._closing = False
        protocol.connection_made(self)
        loop.add_reader(fd, self._read)

    def _read(self):
        try:
            data = os.read(self._fd, self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self._protocol.data_received(data)

    def write(self, data):
        if self._closing or not data:
            return
        if not self._chunks:
            try:
                n = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self._lost(exc)
                return
            if n == len(data):
                return
            data = memoryview(data)[n:]
            self._loop.add_writer(self._fd, self._flush)
        self._chunks.append(data)
        self._size += len(data)

    def _flush(self):
        # A port takes at most 32 KiB per write: the chunks are written from, not shifted down.
        while self._chunks:
            chunk = self._chunks[0]
            try:
                n = os.write(self._fd, chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(exc)
                return
            self._size -= n
            if n == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = memoryview(chunk)[n:]
                return
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._lost(None)

    def get_write_buffer_size(self):
        return self._size

    def can_write_eof(self):
        return False

    def is_closing(self):
        return self._closing

    def close(self):
        if not self._closing:
            self._closing = True
            if not self._chunks:
                self._loop.call_soon(self._lost, None)

    def abort(self):
        self._lost(None)

    def _lost(self, exc):
        if self._fd < 0:
            return
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._chunks.clear()
        self._size = 0
        self._protocol.connection_lost(exc)
        if not self._ended.done():
            self._ended.set_result(None)


# -- the daemon -----------------------------------------------------------------------------


def run(args):
    """Run until killed. *args*: the parsed ``daemon`` options."""
    if os.geteuid() != 0 and not args.allow_non_root:
        raise SystemExit("lima-guestagent: the daemon must run as root")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    lister = ports.Lister(args.proc_net, use_netlink=False) if args.proc_net else ports.Lister()
    agent = Agent(loop, lister, tick=args.tick, idle_tick=args.idle_tick, user=args.user,
                  use_trigger=not (args.no_trigger or args.proc_net))
    agent.start()
    if agent.trigger is not None:
        when = "on tracepoint events and every %g s" % agent.idle_tick
    else:
        when = "every %g s (no tracepoint trigger: %s)" % (agent.tick, agent.why_polling)
    log.info("lima-guestagent %s (protocol %d, Python %s): sockets listed through %s, %s", VERSION,
             wire.PROTOCOL_VERSION, sys.version.split()[0], agent.lister.how["tcp"], when)
    signal.signal(signal.SIGTERM, _terminate)
    tasks = []
    if args.socket:
        loop.run_until_complete(serve_unix(agent, args.socket, args.socket_owner))
    if args.virtio_port:
        tasks.append(loop.create_task(serve_virtio(agent, args.virtio_port)))
    if args.vsock_port:
        tasks.append(loop.create_task(serve_vsock(agent, args.vsock_port)))
    try:
        if tasks:
            loop.run_until_complete(_first_failure(loop, tasks))
        else:
            loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        agent.close()
        if args.socket:
            try:
                os.unlink(args.socket)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
    return 0


def _terminate(_signum, _frame):
    raise SystemExit(0)


async def _first_failure(loop, tasks):
    """Wait until one of *tasks* fails (they run forever otherwise) and raise its error."""
    done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()
