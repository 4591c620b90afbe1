"""docs/cli.md: limactl's commands and flags (Lima's ``cmd/limactl``) against ``lima``'s, read from the typer app.

:data:`LIMACTL` is limactl's command set as data; :func:`render` walks the typer app for
each command and flag and writes the table. A limactl command or flag ``lima`` lacks must
be in :data:`LEFT_OUT` with the reason, or rendering fails: ``tests/docs`` renders the
table and compares it with docs/cli.md, so neither can go stale.
"""

from __future__ import annotations

from typing import Any

#: limactl's persistent (global) flags
GLOBAL = ("--debug", "--log-level", "--log-format", "--tty", "-y/--yes", "--version", "-h/--help")

_EDIT = ("--cpus", "--dns", "--memory", "--mount", "--mount-only", "--mount-none", "--mount-type", "--mount-writable",
         "--mount-inotify", "--network", "--rosetta", "--set", "--ssh-port", "--video", "--disk", "--vm-type")
_CREATE = ("--name", "--list-templates", "--list-drivers", *_EDIT, "--arch", "--containerd", "--plain",
           "--port-forward", "--param", "--nested-virt", "--dry-run")

#: command (a group's subcommand as "group sub") -> (aliases, flags); Lima's, as of the Lima lima-core follows
LIMACTL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "create": ((), _CREATE),
    "start": ((), (*_CREATE, "--foreground", "--timeout", "--progress")),
    "stop": ((), ("-f/--force",)),
    "restart": ((), ("-f/--force", "--progress")),
    "shell": ((), ("--shell", "--workdir", "--reconnect", "--preserve-env", "--start", "--sync")),
    "copy": (("cp",), ("-r/--recursive", "-v/--verbose", "--backend")),
    "list": (("ls",), ("-f/--format", "--list-fields", "--json", "-q/--quiet", "--all-fields", "--yq",
                       "-l/--filter")),
    "delete": (("remove", "rm"), ("-f/--force",)),
    "edit": ((), (*_EDIT, "--start")),
    "validate": ((), ("--fill",)),
    "prune": ((), ("--keep-referred",)),
    "info": ((), ("--yq",)),
    "show-ssh": ((), ("-f/--format",)),
    "factory-reset": ((), ()),
    "protect": ((), ()),
    "unprotect": ((), ()),
    "clone": ((), (*_EDIT, "--start")),
    "rename": ((), (*_EDIT, "--start")),
    "tunnel": ((), ("--type", "--socks-port")),
    "watch": ((), ("--json",)),
    "completion": ((), ()),
    "disk create": ((), ("--size", "--format")),
    "disk list": (("ls",), ("--json",)),
    "disk delete": (("remove", "rm"), ("-f/--force",)),
    "disk unlock": ((), ()),
    "disk resize": ((), ("--size",)),
    "disk import": ((), ()),
    "snapshot create": (("save",), ("--tag",)),
    "snapshot apply": (("load",), ("--tag",)),
    "snapshot delete": (("del",), ("--tag",)),
    "snapshot list": (("ls",), ("-q/--quiet",)),
    "template copy": ((), ()),
    "template validate": ((), ("--fill",)),
    "hostagent": ((), ("--pidfile", "--socket", "--run-gui", "--guestagent", "--nerdctl-archive", "--progress")),
    "debug": ((), ()),
    "usernet": ((), ()),
    "sudoers": ((), ()),
    "start-at-login": ((), ()),
    "network": ((), ()),
    "generate-doc": ((), ()),
    "generate-jsonschema": ((), ()),
    "mcp": ((), ()),
}

#: what lima leaves out, and why ("command" or "command --flag")
LEFT_OUT = {
    "shell --sync": "not implemented: lima-core has no file synchronisation back from the guest",
    "hostagent --pidfile": "lima-core's host agent is internal (`lima hostagent NAME`, started by `lima start`); its "
                           "pid file and socket are the instance's, not options",
    "hostagent --socket": "as --pidfile",
    "hostagent --run-gui": "the driver's can_run_gui feature decides, not a flag",
    "hostagent --guestagent": "lima-core installs no guest agent",
    "hostagent --nerdctl-archive": "lima-core does not install nerdctl-full (containerd: is warned about)",
    "hostagent --progress": "`lima start --progress` tails the guest's log itself",
    "debug": "Lima's debugging tools for its own DNS server; lima-core runs no DNS server",
    "usernet": "user-v2 networks (lima:user-v2) are not implemented",
    "sudoers": "socket_vmnet networks (macOS) are not implemented",
    "start-at-login": "autostart (launchd, systemd units) is not implemented",
    "network": "networks.yaml management: vmnet networks are not implemented",
    "generate-doc": "lima-core's documentation is generated from its own sources (this file, docs/hooks.md)",
    "generate-jsonschema": "lima.yaml's schema is lima_core.limatype's models; docs/lima-yaml.md lists every field",
    "mcp": "the MCP server for AI agents is not implemented",
}

#: lima's own additions, explained
LIMA_ONLY = {
    "suspend": "save a running VM's state and end it (lima-core's driver capability; docs/suspend.md)",
    "resume": "bring a suspended VM back where it was (`lima start` resumes too)",
    "port-forwards": "the guest ports forwarded now and the guest agent's state (docs/guest-agent.md)",
    "drivers": "list, build and scaffold VM drivers (lima-core's pluggable drivers)",
    "template list": "the templates (`lima create --list-templates` prints the same names)",
    "template show": "print a template, optionally with base: merged in",
    "template yq": "query a template with a yq expression",
    "--install-completion": "typer's: install the completion script for the current shell",
    "--show-completion": "typer's: print the completion script for the current shell",
}


def _split(flag: str) -> list[str]:
    return flag.split("/")


def _lima_commands(app: Any) -> dict[str, Any]:
    """"name" / "group sub" -> the click command, aliases included."""
    import typer

    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    out: dict[str, Any] = {}
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = out[name] = root.get_command(ctx, name)  # type: ignore[attr-defined]
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            out[f"{name} {sub_name}"] = sub
    return out


def _opts(cmd: Any) -> set[str]:
    found: set[str] = {"-h", "--help"}
    for param in cmd.params:
        found.update(getattr(param, "opts", []))
        found.update(getattr(param, "secondary_opts", []))
    return found


def _callback(cmd: Any) -> Any:
    fn = getattr(cmd, "callback", None)
    return getattr(fn, "__wrapped__", fn)


def render(app: Any) -> str:
    """docs/cli.md. :raises ValueError: a limactl command or flag is missing from lima without a reason."""
    import typer

    commands = _lima_commands(app)
    root = typer.main.get_command(app)
    rows, missing = [], []
    global_opts = _opts(root)
    for flag in GLOBAL:
        here = all(f in global_opts for f in _split(flag))
        rows.append(f"| (global) | `{flag}` | {'yes' if here else 'no'} | "
                    f"{'also after the command, as limactl takes it' if here and flag not in ('--version', '-h/--help') else ''} |")
    for name, (aliases, flags) in LIMACTL.items():
        cmd = commands.get(name)
        if cmd is None:
            reason = LEFT_OUT.get(name)
            if reason is None:
                missing.append(name)
            rows.append(f"| `{name}` | | no | {reason} |")
            continue
        group = name.split(" ")[0] + " " if " " in name else ""
        gone = [a for a in aliases if group + a not in commands]
        if gone:
            missing.append(f"{name} (alias {', '.join(gone)})")
        shown = f"`{name}`" + (f" ({', '.join(aliases)})" if aliases else "")
        rows.append(f"| {shown} | | yes | {(cmd.help or '').strip().splitlines()[0] if cmd.help else ''} |")
        have = _opts(cmd)
        for flag in flags:
            here = all(f in have for f in _split(flag))
            reason = LEFT_OUT.get(f"{name} {flag}", "")
            if not here and not reason:
                missing.append(f"{name} {flag}")
            rows.append(f"| | `{flag}` | {'yes' if here else 'no'} | {reason} |")
    if missing:
        raise ValueError("limactl commands or flags that lima lacks without a reason in LEFT_OUT: "
                         + ", ".join(missing))
    extra = []
    for key, why in LIMA_ONLY.items():
        extra.append(f"| `{key}` | {why} |")
    body = "\n".join(rows)
    lima_only = "\n".join(extra)
    return f"""# The `lima` command against `limactl`

`lima` takes limactl's commands, aliases and flags (Lima's `cmd/limactl`), with limactl's
behaviour, exit codes and messages where they matter to scripts. This table is generated
from the typer app (`lima_core/cli/_reference.py`; `tests/docs` fails when this file and
the app differ, or when a limactl command or flag is missing without a reason). Regenerate:
`.venv/bin/python -c 'from lima_core.cli import app; from lima_core.cli._reference import render; print(render(app), end="")' > docs/cli.md`

Global flags may come before or after the command (`lima --debug list`, `lima list
--debug`), and boolean flags take Go's `--flag=false` form (`--tty=false`). `--set`,
`--yq` and `--filter` take yq expressions, evaluated by libjq (the `jq` bindings):
the expressions Lima's flags build and its documentation shows mean the same; yq's
YAML-only operators (comments, tags, anchors) do not exist, and, as in Lima, an
expression cannot read the host's environment or files.

| limactl command | flag | in lima | notes |
|---|---|---|---|
{body}

## lima's own additions

| command or flag | what |
|---|---|
{lima_only}
"""


def command_paths(app: Any) -> list[list[str]]:
    """Every visible command of the app as argv words (["start"], ["disk", "create"]), groups included."""
    commands = _lima_commands(app)
    return [name.split(" ") for name, cmd in commands.items()
            if not cmd.hidden and not commands[name.split(" ")[0]].hidden]
