"""B1r: ``lima start`` to READY on the cloud-init guest against raw QEMU booting it with the same arguments.

The real guest (templates/test-guest-cloud.yaml: Debian with systemd, cloud-init and OpenSSH) runs
cloud-init at every boot, with lima-core's cidata. The floor boots the same disk with the same QEMU
arguments and cidata (a new instance id each boot, as lima gives each start) until the guest's boot
scripts are done (``/run/lima-boot-done``: cloud-init's final stage has run them), tested as the host
agent tests it; ``lima start`` additionally waits for its requirements and reads the boot's failures.
See ``_boot`` for the rest.
"""

from __future__ import annotations

from . import _boot, _env, _timing

ID = "B1r"
TARGET = 1.05


def run(opts: _env.Options) -> list[_timing.Row]:
    boot = _boot.measure(opts, cloud=True)
    s = boot["samples"]
    extra = {"runs": boot["runs"], "milestones_s": _boot.milestone_medians(boot["milestones"]["internal"], boot["runs"]),
             "qemu_argv": boot["qemu_argv"]}
    own = _boot.own_time(boot["milestones"]["internal"], boot["runs"])
    floor = _timing.median(s["raw"])
    return [_timing.row(ID, "lima start → READY (cloud-init guest, internal qemu)", "s", s["internal"],
                        "raw qemu, same arguments → cloud-init's boot scripts done", s["raw"], target=TARGET,
                        extra=extra),
            _timing.Row(id=ID, what="lima start → READY, as raw QEMU's median + lima's own time", unit="s",
                        value=floor + _timing.median(own), floor="raw qemu, same arguments → boot scripts done",
                        floor_value=floor, target=TARGET, samples=own, floor_samples=s["raw"],
                        extra={"own_time_s": round(_timing.median(own), 3)}, load=_timing.load())]
