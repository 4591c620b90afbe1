"""A wake-up when a socket may have started or stopped listening, from the kernel's tracepoints.

Listing the sockets is cheap, but not free under emulation, and a short
polling tick is what makes a new listener reach the host quickly. Instead,
the agent makes a tracing instance of its own in tracefs
(``<tracefs>/instances/lima-guestagent``, so nobody else's tracing is
touched) with three events enabled, each filtered in the kernel:

- ``sock/inet_sock_set_state`` entering or leaving TCP_LISTEN (a TCP
  listener appears or goes away);
- ``syscalls/sys_exit_bind`` and ``syscalls/sys_exit_listen``, successful
  (a UDP socket is bound; listen() returned).

Its ``trace_pipe`` becomes readable when one fires, and the agent lists the
sockets then. Where tracefs cannot be used (not root, no tracefs, a kernel
without these events), :func:`open_trigger` returns None and the agent polls.
"""

import errno
import os
import subprocess

NAME = "lima-guestagent"
ROOTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
#: event -> its filter
EVENTS = (
    ("sock/inet_sock_set_state", "newstate == 10 || oldstate == 10"),
    ("syscalls/sys_exit_bind", "ret == 0"),
    ("syscalls/sys_exit_listen", "ret == 0"),
)
#: the instance's ring buffer per CPU: the events are only a wake-up, their text is thrown away
BUFFER_KB = 8


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _tracefs():
    for root in ROOTS:
        if os.path.isdir(os.path.join(root, "instances")):
            return root
    try:  # systemd mounts it; a guest without systemd may not have
        os.makedirs(ROOTS[0], exist_ok=True)
        mounted = subprocess.call(["mount", "-t", "tracefs", "nodev", ROOTS[0]], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) == 0
        if mounted and os.path.isdir(os.path.join(ROOTS[0], "instances")):
            return ROOTS[0]
    except OSError:
        pass
    return None


class Trigger(object):
    """The tracing instance and its trace_pipe (:attr:`fd`, readable when an event fired)."""

    def __init__(self, directory, events):
        self.directory = directory
        self.events = events
        self.fd = os.open(os.path.join(directory, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def drain(self):
        """Discard what fired; whether anything had."""
        fired = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return fired
            if not data:
                return fired
            fired = True

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _remove(self.directory)


def _remove(directory):
    for event, _filter in EVENTS:
        try:
            _write(os.path.join(directory, "events", event, "enable"), "0")
        except OSError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


def open_trigger():
    """The trigger, or None (with the reason as second value) when tracefs cannot be used."""
    if os.geteuid() != 0:
        return None, "not root"
    root = _tracefs()
    if root is None:
        return None, "no tracefs"
    directory = os.path.join(root, "instances", NAME)
    try:
        if os.path.isdir(directory):
            _remove(directory)  # left by an agent that was killed
        try:
            os.mkdir(directory)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        _write(os.path.join(directory, "buffer_size_kb"), str(BUFFER_KB))
        enabled = []
        for event, condition in EVENTS:
            path = os.path.join(directory, "events", event)
            if not os.path.isdir(path):
                continue
            try:
                _write(os.path.join(path, "filter"), condition)
            except OSError:
                pass  # unfiltered, it only wakes the agent more often
            _write(os.path.join(path, "enable"), "1")
            enabled.append(event)
        if not enabled:
            _remove(directory)
            return None, "the kernel has none of the tracepoints %s" % ", ".join(e for e, _ in EVENTS)
        return Trigger(directory, enabled), ""
    except OSError as exc:
        _remove(directory)
        return None, "%s: %s" % (directory, exc.strerror or exc)
