"""``lima-guestagent``: ``daemon`` (the agent), ``ports`` (the listening sockets, once), ``version``."""

import argparse
import logging
import sys

from . import VERSION, daemon, ports, wire


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lima-guestagent", description="lima-core's guest agent")
    parser.add_argument("--debug", action="store_true", help="log every session and channel")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("daemon", help="run the agent (as root)")
    run.add_argument("--virtio-port", default="", help="serve the host on /dev/virtio-ports/NAME")
    run.add_argument("--vsock-port", type=int, default=0, help="serve the host on this vsock port")
    run.add_argument("--socket", default=daemon.DEFAULT_SOCKET,
                     help="serve on this unix socket (default %(default)s; '' for none)")
    run.add_argument("--socket-owner", type=int, default=-1, help="uid that owns the unix socket")
    run.add_argument("--user", default="", help="connect to forwarded unix sockets as this user")
    run.add_argument("--tick", type=float, default=daemon.DEFAULT_TICK,
                     help="seconds between listings of the listening sockets when the kernel's tracepoints cannot "
                          "say when to list them (default %(default)s)")
    run.add_argument("--idle-tick", type=float, default=daemon.DEFAULT_IDLE_TICK,
                     help="seconds between listings when they can (default %(default)s)")
    run.add_argument("--no-trigger", action="store_true", help="do not use the tracepoints: list every --tick")
    # For lima-core's fake guests: not root, and the "guest's" sockets read from a directory of tables.
    run.add_argument("--allow-non-root", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--proc-net", default="", help=argparse.SUPPRESS)
    sub.add_parser("ports", help="print the listening sockets and exit")
    sub.add_parser("version", help="print the version and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "daemon":
        if args.tick <= 0 or args.idle_tick <= 0:
            parser.error("--tick and --idle-tick must be more than 0")
        return daemon.run(args)
    if args.command == "ports":
        lister = ports.Lister()
        for proto, ip, port in sorted(lister.listening()):
            print("%s %s" % (proto, daemon.mux.join_address(ip, port)))
        return 0
    if args.command == "version":
        print("lima-guestagent %s (protocol %d)" % (VERSION, wire.PROTOCOL_VERSION))
        return 0
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
