"""Port forwarding for one running instance: lima.yaml's ``portForwards`` and Lima's defaults.

Started by the host agent once the essential requirements hold (SSH works),
it runs in a thread of its own around an asyncio loop:

1. static rules: ``ssh -O forward -L`` over the ControlMaster, TCP only, in
   plain mode too (as Lima);
2. reverse socket rules: ``ssh -O forward -R`` (the guest user's socket);
3. then, unless in plain mode, the guest's listeners are followed and
   forwarded as the rules say (:mod:`.portrules`), through one of two paths:

   - the guest agent (``lima-guestagent``), reached as :mod:`.gaclient`
     says: it reports every TCP and UDP listener as it appears and goes, and
     carries the connections, so the host listens itself (:mod:`.hostlisten`);
     socket rules are carried the same way;
   - without it (the guest has no python3, so the agent cannot run there):
     the TCP listeners are read over SSH and each is forwarded with
     ``ssh -O forward``, as Lima's SSH forwarder does; UDP is not forwarded
     on that path, and socket rules are SSH forwards too.

Each change is logged as Lima logs it ("Forwarding TCP from 127.0.0.1:8080
to 127.0.0.1:8080", "Stopping forwarding ...", "Not forwarding TCP
0.0.0.0:22") and emitted as a ``portForward`` event. A host address that
cannot be had (in use, privileged) is reported once, and tried again only
when the guest listener goes and comes back. :meth:`PortForwarding.status`
is what ``GET /v1/port-forwards`` on ha.sock (``lima port-forwards``) shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import host as driverhost
from ..guestagent.mux import dial_address, join_address, split_address
from . import gaclient, hostlisten, portrules, sshforward

log = logging.getLogger("lima_core.hostagent")

#: seconds between attempts to reach the guest agent
AGENT_RETRY = 1.0
#: Lima waits this long for the guest agent before READY (then: degraded)
AGENT_WAIT = 60.0
NO_AGENT = "guest agent does not seem to be running; port forwards will not work"


@dataclasses.dataclass
class Forward:
    """A host address and the guest listener(s) it leads to."""

    proto: str
    host: str
    #: guest addresses mapped here; connections go to the first
    guests: list[str]
    via: str
    rule: int
    state: str = "forwarding"
    error: str = ""
    static: bool = False
    listener: Any = None
    #: the ssh -L/-R spec to cancel
    spec: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"protocol": self.proto, "guestAddr": self.guests[0] if self.guests else "", "hostAddr": self.host,
               "state": self.state, "via": self.via, "rule": self.rule}
        if self.static:
            out["static"] = True
        if self.error:
            out["error"] = self.error
        return out


class PortForwarding:
    """The thread that forwards an instance's ports; see the module docstring."""

    def __init__(self, *, inst_dir: Path, name: str, driver: driverhost.DriverHost, rules: list[portrules.Rule],
                 plain: bool, skip_sockets: bool, little_endian: bool, emit: Callable[..., None],
                 can_run_agent: Callable[[], bool] | None = None) -> None:
        self.inst_dir = inst_dir
        self.name = name
        self.driver = driver
        self.rules = rules
        self.plain = plain
        self.skip_sockets = skip_sockets
        self.little_endian = little_endian
        self._emit = emit
        #: whether the guest can run lima-guestagent (default: ask it over SSH whether it has python3)
        self._can_run_agent = can_run_agent
        self.loop = asyncio.new_event_loop()
        self.forwards: dict[tuple[str, str], Forward] = {}
        #: (proto, guest address) -> the key of its forward
        self._guests: dict[tuple[str, str], tuple[str, str]] = {}
        #: the guest's listeners as last reported (for a new session's first report)
        self._listening: set[tuple[str, str, int]] = set()
        self.session: gaclient.HostSession | None = None
        #: "starting", "waiting" (for the agent), "connected", "ssh" (no agent: SSH forwards), "plain"
        self.agent_state = "starting"
        self.agent_info: dict[str, Any] = {}
        self.agent_error = ""
        #: seconds the last ping took to come back
        self.agent_ping: float | None = None
        self._decided = threading.Event()
        self._updates: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="port-forwarding", daemon=True)

    # -- from the host agent's threads -----------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Close every forward (host sockets removed, SSH forwards cancelled) and end the thread."""
        self._decided.set()  # nobody waits for the agent any more
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self._cancel)
        self._thread.join(timeout)

    def wait_agent(self, timeout: float = AGENT_WAIT) -> bool:
        """Whether the way to forward is settled within *timeout*: the agent answered, or the guest cannot
        run it (the SSH path), or plain mode. False: the agent is expected but did not answer."""
        self._decided.wait(timeout)
        return self.agent_state in ("connected", "ssh", "plain")

    def no_agent_error(self) -> str:
        return NO_AGENT + (f" ({self.agent_error})" if self.agent_error else "")

    def status(self) -> dict[str, Any]:
        """The current forwards and the state of the guest agent, as JSON."""
        if not self._thread.is_alive():
            return self._status()
        future = asyncio.run_coroutine_threadsafe(self._status_async(), self.loop)
        return future.result(5)

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._updates = asyncio.Queue()
        self._task = self.loop.create_task(self._main())
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - logged; forwarding stops, the instance runs on
            log.exception("port forwarding failed")
        finally:
            self.loop.run_until_complete(self._close_all())
            self.loop.close()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _status_async(self) -> dict[str, Any]:
        return self._status()

    def _status(self) -> dict[str, Any]:
        agent = {"state": self.agent_state}
        if self.agent_info:
            agent["info"] = self.agent_info
        if self.agent_error:
            agent["error"] = self.agent_error
        if self.agent_ping is not None and self.agent_state == "connected":
            agent["pingMs"] = round(self.agent_ping * 1000, 2)
        return {"guestAgent": agent, "portForwards": [f.to_json() for f in self.forwards.values()]}

    async def _main(self) -> None:
        await self._static()
        if self.plain:
            self._decide("plain")
            await asyncio.Event().wait()
        await self._reverse_sockets()
        if await self._guest_can_run_agent():
            await self._socket_rules("agent")
            worker = self.loop.create_task(self._apply_updates())
            try:
                await self._follow_agent()
            finally:
                worker.cancel()
        else:
            log.warning("the guest has no python3, so lima-guestagent cannot run there; forwarding its TCP ports "
                        "over SSH (UDP is not forwarded)")
            self._decide("ssh")
            await self._socket_rules("ssh")
            worker = self.loop.create_task(self._apply_updates())
            try:
                await self._follow_over_ssh()
            finally:
                worker.cancel()

    def _decide(self, state: str) -> None:
        self.agent_state = state
        self._decided.set()

    async def _blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    # -- static and socket rules --------------------------------------------------------------

    async def _static(self) -> None:
        for rule, host, guest in portrules.static_forwards(self.rules):
            fwd = Forward("tcp", host, [guest], "ssh", rule.index, static=True)
            self.forwards[("tcp", host)] = fwd
            await self._open_ssh(fwd, f"{_ssh_host(host)}:{_ssh_guest(guest)}")

    async def _reverse_sockets(self) -> None:
        for rule in self.rules:
            if not (rule.is_socket and rule.reverse):
                continue
            if self.skip_sockets:
                log.warning("%s: not forwarding socket %s: driver %r does not forward sockets", rule.describe(),
                            rule.guest_socket, self.driver.name)
                continue
            fwd = Forward("unix", rule.host_socket, [rule.guest_socket], "ssh", rule.index)
            self.forwards[("reverse", rule.guest_socket)] = fwd
            await self._blocking(sshforward.run, self.inst_dir, self.name, f"rm -f {shlex.quote(rule.guest_socket)}")
            await self._open_ssh(fwd, f"{rule.guest_socket}:{rule.host_socket}", reverse=True)

    async def _socket_rules(self, via: str) -> None:
        for rule in self.rules:
            if not rule.is_socket or rule.reverse or rule.ignore:
                continue
            if self.skip_sockets:
                log.warning("%s: not forwarding socket %s: driver %r does not forward sockets", rule.describe(),
                            rule.guest_socket, self.driver.name)
                continue
            host = portrules.host_address(rule, 0)
            proto = "unix" if host.startswith("/") else "tcp"
            fwd = Forward(proto, host, [rule.guest_socket], via, rule.index)
            self.forwards[(proto, host)] = fwd
            if via == "ssh":
                if proto == "unix":
                    try:
                        hostlisten.prepare_unix_path(host)
                    except OSError as exc:
                        self._failed(fwd, str(exc))
                        continue
                await self._open_ssh(fwd, f"{host if proto == 'unix' else _ssh_host(host)}:{rule.guest_socket}")
            else:
                await self._open_listener(fwd, "unix")

    # -- the guest agent -------------------------------------------------------------------------

    async def _guest_can_run_agent(self) -> bool:
        if self._can_run_agent is not None:
            return await self._blocking(self._can_run_agent)
        for _ in range(3):
            try:
                proc = await self._blocking(sshforward.run, self.inst_dir, self.name, sshforward.PYTHON_PROBE)
            except OSError as exc:
                log.warning("cannot ask the guest for python3: %s", exc)
                return True
            answer = proc.stdout.strip()
            if answer in ("python3: yes", "python3: no"):
                return answer.endswith("yes")
            await asyncio.sleep(AGENT_RETRY)
        return True  # SSH did not answer: expect the agent, whose absence is then reported

    async def _follow_agent(self) -> None:
        forward = await self._blocking(self.driver.forward_guest_agent)
        self.agent_state = "waiting"
        announced = ""
        while True:
            try:
                sock = await self._blocking(gaclient.dial, self.driver, self.inst_dir, self.name, forward)
                _transport, session = await self.loop.create_connection(
                    lambda: gaclient.HostSession(self.loop, self._on_ports, self._on_agent_error), sock=sock)
                try:
                    info = await asyncio.wait_for(asyncio.shield(session.hello), gaclient.HELLO_TIMEOUT)
                except asyncio.TimeoutError:
                    session.hello.cancel()
                    session.close()
                    raise gaclient.AgentUnreachable(f"no answer to HELLO within {gaclient.HELLO_TIMEOUT:g} s; "
                                                    "connecting again") from None
            except (gaclient.AgentUnreachable, OSError) as exc:
                text = getattr(exc, "message", None) or str(exc)
                if text != announced:
                    log.info("waiting for the guest agent: %s", text)
                    announced = text
                self.agent_error = text
                await asyncio.sleep(AGENT_RETRY)
                continue
            self.session, self.agent_info, self.agent_error, announced = session, info, "", ""
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                self.agent_ping = await session.ping(gaclient.PING_TIMEOUT)
            self._decide("connected")
            log.info("connected to the guest agent (lima-guestagent %s, Python %s; sockets listed through %s, "
                     "woken by %s, at least every %s s)", info.get("agent"), info.get("python"),
                     "/".join(sorted(set((info.get("discovery") or {}).values()))) or "?", info.get("trigger"),
                     info.get("tick"))
            await self._keep_alive(session)
            self.session = None
            self.agent_state = "waiting"
            why = session.ended.result() if session.ended.done() else None
            log.warning("lost the connection to the guest agent%s; reconnecting", f" ({why})" if why else "")

    async def _keep_alive(self, session: gaclient.HostSession) -> None:
        """Until the session ends; a ping every PING_INTERVAL, and the session dropped when nothing at all
        came from the agent for PING_TIMEOUT (a long forwarded transfer counts as a sign of life)."""
        while True:
            done, _ = await asyncio.wait([session.ended], timeout=gaclient.PING_INTERVAL)
            if done:
                return
            try:
                self.agent_ping = await session.ping(gaclient.PING_TIMEOUT)
            except ConnectionError:
                return
            except asyncio.TimeoutError:
                if self.loop.time() - session.last_heard < gaclient.PING_TIMEOUT:
                    continue
                log.warning("nothing came from the guest agent for %g s", gaclient.PING_TIMEOUT)
                session.close()
                await session.ended
                return

    def _on_ports(self, added: set, removed: set, whole: bool) -> None:
        if whole:
            # The whole set (a session's first report): forwards of listeners gone meanwhile go.
            removed = (self._listening - added) | removed
            added = added - self._listening
        self._listening = (self._listening - removed) | added
        log.debug("the guest's listeners: +%s -%s", sorted(added), sorted(removed))
        assert self._updates is not None
        self._updates.put_nowait((added, removed))

    def _on_agent_error(self, message: str) -> None:
        log.warning("received error from the guest: %s", message)

    # -- SSH, without the agent ------------------------------------------------------------------

    async def _follow_over_ssh(self) -> None:
        async for now in sshforward.follow(self.inst_dir, self.name, self.little_endian, AGENT_RETRY):
            added, removed = now - self._listening, self._listening - now
            self._listening = now
            assert self._updates is not None
            self._updates.put_nowait((added, removed))

    # -- applying changes ------------------------------------------------------------------------

    async def _apply_updates(self) -> None:
        assert self._updates is not None
        while True:
            added, removed = await self._updates.get()
            for listener in sorted(removed):
                try:
                    await self._guest_gone(*listener)
                except Exception:  # noqa: BLE001 - one listener's trouble must not end forwarding
                    log.exception("stopping the forward of %s failed", listener)
            for listener in sorted(added):
                try:
                    await self._guest_listening(*listener)
                except Exception:  # noqa: BLE001 - as above
                    log.exception("forwarding %s failed", listener)

    async def _guest_listening(self, proto: str, ip: str, port: int) -> None:
        guest = join_address(ip, port)
        if (proto, guest) in self._guests:
            return
        if portrules.statically_forwarded(self.rules, port):
            log.debug("%s %s is forwarded by a static rule", proto.upper(), guest)
            return
        decision = portrules.match(self.rules, proto, ip, port)
        if decision.ignored:
            if not portrules.ignores_all(self.rules, proto):
                log.info("Not forwarding %s %s", proto.upper(), guest)
                self._event("not-forwarding", proto, guest, "")
            return
        key = (proto, decision.host)
        self._guests[(proto, guest)] = key
        fwd = self.forwards.get(key)
        if fwd is not None:
            fwd.guests.append(guest)
            return
        rule = decision.rule.index if decision.rule is not None else -1
        via = "ssh" if self.agent_state == "ssh" else "agent"
        fwd = self.forwards[key] = Forward(proto, decision.host, [guest], via, rule)
        if via == "ssh":
            if proto != "tcp":
                fwd.state, fwd.error = "failed", "UDP is forwarded by the guest agent only"
                return
            await self._open_ssh(fwd, f"{_ssh_host(decision.host)}:{_ssh_guest(guest)}")
        else:
            await self._open_listener(fwd, proto)

    async def _guest_gone(self, proto: str, ip: str, port: int) -> None:
        guest = join_address(ip, port)
        key = self._guests.pop((proto, guest), None)
        if key is None:
            return
        fwd = self.forwards[key]
        if len(fwd.guests) > 1:
            fwd.guests.remove(guest)
            return
        del self.forwards[key]
        await self._close(fwd, say=True)

    async def _open_listener(self, fwd: Forward, guest_proto: str) -> None:
        try:
            fwd.listener = await hostlisten.listen(self.loop, fwd.proto, fwd.host, guest_proto,
                                                   lambda: self.session, lambda: fwd.guests[0])
        except OSError as exc:
            self._bind_failed(fwd, exc)
            return
        self._forwarding(fwd)

    async def _open_ssh(self, fwd: Forward, spec: str, reverse: bool = False) -> None:
        if fwd.proto == "tcp" and not reverse:
            try:  # ssh's own message would only say "Port forwarding failed"
                hostlisten.inet_socket("tcp", fwd.host).close()
            except OSError as exc:
                self._bind_failed(fwd, exc)
                return
        try:
            await self._blocking(sshforward.forward, self.inst_dir, self.name, spec, reverse=reverse)
        except sshforward.ForwardFailed as exc:
            self._failed(fwd, f"ssh: {exc.message}")
            return
        fwd.spec = ("-R " if reverse else "-L ") + spec
        self._forwarding(fwd, reverse)

    def _forwarding(self, fwd: Forward, reverse: bool = False) -> None:
        guest = fwd.guests[0]
        if reverse:
            text = f"Forwarding unix socket {fwd.host} to {guest} in the guest"
        else:
            text = f"Forwarding {fwd.proto.upper()} from {guest} to {fwd.host}"
        log.info("%s", text)
        self._event("forwarding", fwd.proto, guest, fwd.host, message=text)

    def _bind_failed(self, fwd: Forward, exc: OSError) -> None:
        """As Lima: a privileged port, or one of a common host service, is no news (logged as "Not
        forwarding") when the default rule chose it; a lima.yaml rule that cannot be had is a warning."""
        quiet = fwd.rule < 0 and hostlisten.negligible(fwd.proto, fwd.host, exc)
        self._failed(fwd, hostlisten.bind_error(fwd.proto, fwd.host, exc), quiet=quiet)

    def _failed(self, fwd: Forward, error: str, quiet: bool = False) -> None:
        fwd.state, fwd.error = "failed", error
        guest = fwd.guests[0]
        if quiet:
            log.info("Not forwarding %s %s: %s", fwd.proto.upper(), fwd.host, error)
            self._event("not-forwarding", fwd.proto, guest, fwd.host, error=error)
            return
        text = f"cannot forward {fwd.proto.upper()} from {guest} to {fwd.host}: {error}"
        log.warning("%s", text)
        self._event("failed", fwd.proto, guest, fwd.host, error=error, message=f"WARNING: {text}")

    async def _close(self, fwd: Forward, say: bool) -> None:
        if fwd.state != "forwarding":
            return
        fwd.state = "stopped"
        if fwd.listener is not None:
            fwd.listener.close()
            fwd.listener = None
        if fwd.spec:
            flag, spec = fwd.spec.split(" ", 1)
            await self._blocking(sshforward.cancel, self.inst_dir, self.name, spec, reverse=flag == "-R")
            if fwd.proto == "unix" and flag == "-L":
                with contextlib.suppress(OSError):
                    Path(fwd.host).unlink()
        if say:
            guest = fwd.guests[0] if fwd.guests else ""
            log.info("Stopping forwarding %s from %s to %s", fwd.proto.upper(), guest, fwd.host)
            self._event("stopping", fwd.proto, guest, fwd.host)

    async def _close_all(self) -> None:
        if self.session is not None:
            self.session.close()
        for fwd in list(self.forwards.values()):
            with contextlib.suppress(Exception):
                await self._close(fwd, say=False)
        self.forwards.clear()

    def _event(self, kind: str, proto: str, guest: str, host: str, *, error: str = "", message: str = "") -> None:
        status = {"type": kind, "protocol": proto, "guestAddr": guest, "hostAddr": host}
        if error:
            status["error"] = error
        self._emit(port_forward=status, message=message)


def _ssh_host(address: str) -> str:
    """A host address in ssh -L's syntax (IPv6 in brackets)."""
    host, port = split_address(address)
    return join_address(host, port)


def _ssh_guest(address: str) -> str:
    host, port = dial_address(address)
    return join_address(host, port)


def default_little_endian(arch: str) -> bool:
    """The byte order of the guest's /proc/net (s390x is big-endian)."""
    return arch not in ("s390x",) if arch else sys.byteorder == "little"
