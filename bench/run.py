#!/usr/bin/env python3
"""``python3 bench/run.py [--quick] [--json]``: one-hooks' speed claims, measured.

Every figure is printed next to a baseline measured in the same run, on the
same machine, because absolute times on a shared machine mean little:

1. recovery storm (real hook processes against the simulated oned with a real
   oned's latencies) vs the old one-process-per-VM procedure, OpenNebula's
   autostart approach, and the lower bound the simulator allows;
2. start-up cost of one hook process that has nothing to do, vs bare python
   and vs ``import pyone``;
3. launch overhead of the CPU wrapper vs running the emulator directly;
4. how hook cost and storm time grow from 100 to 10,000 VMs;
5. ``one-hooks status`` on 1,000 and 10,000 VMs vs one VM pool read alone.

``--quick`` runs small sizes (about a minute); ``--json`` prints one JSON
object instead of the tables. Nothing here asserts a threshold: the targets
of issue 6 are printed beside each figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cloud import compile_package  # noqa: E402
from scale import run_scale, run_scale_by_hosts  # noqa: E402
from startup import run_startup  # noqa: E402
from status import run_status, table as status_table  # noqa: E402
from storm import lower_bound, ratio, run_autostart, run_serial_pyone, run_storm  # noqa: E402
from wrapper import run_wrapper  # noqa: E402

from one_hooks.sim.oned import REAL_LATENCY, REAL_TIMING  # noqa: E402

#: A VM boots (BOOT_* -> RUNNING) this long after its resume is accepted.
BOOT_SECONDS = 1.0
#: Runs of one-hooks status (and of its baseline) per cloud size.
STATUS_RUNS = 3


def machine() -> Dict[str, Any]:
    """Where the figures come from."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model or platform.processor(),
            "python": platform.python_version(), "kernel": platform.release()}


def _r(value: Optional[float], digits: int = 3) -> Optional[float]:
    return None if value is None else round(value, digits)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmarks; print tables or one JSON object."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--save", metavar="PATH", help="also write the JSON object to PATH")
    args = parser.parse_args(argv)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else \
        (lambda *a: print(*a, flush=True))

    if args.quick:
        hosts, per_host, sample_a, startup_runs, wrapper_runs = 10, 20, 10, 5, 200
        scale_sizes, scale_hosts, status_sizes = (100, 300), (1, 3), (1000,)
    else:
        hosts, per_host, sample_a, startup_runs, wrapper_runs = 50, 40, 100, 21, 200
        scale_sizes, scale_hosts, status_sizes = (100, 1000, 10000), (10, 20, 40), (1000, 10000)
    began = time.monotonic()
    compile_package()
    latency, timing = REAL_LATENCY, REAL_TIMING

    say(f"[1/5] recovery storm: {hosts} hosts x {per_host} VMs, real hooks ...")
    storm = run_storm(hosts, per_host, latency, BOOT_SECONDS, timing=timing)
    say("      the same storm with only the host-reconnect hook registered ...")
    host_only = run_storm(hosts, per_host, latency, BOOT_SECONDS, vm_hooks=False, timing=timing)
    say(f"      baseline (a): serial pyone processes, sample of {sample_a} VMs ...")
    serial = run_serial_pyone(storm.vms, sample_a, latency, BOOT_SECONDS, timing=timing)
    say("      baseline (b): autostart-style, per host serial ...")
    autostart = run_autostart(hosts, per_host, latency, BOOT_SECONDS, timing=timing)
    bound = lower_bound(storm.vms, latency, BOOT_SECONDS, timing, storm.last_return_s)
    say(f"[2/5] hook start-up, median of {startup_runs} ...")
    startup = run_startup(startup_runs, latency)
    say(f"[3/5] wrapper overhead, median of {wrapper_runs} ...")
    wrap = run_wrapper(wrapper_runs)
    say(f"[4/5] scale: {', '.join(map(str, scale_sizes))} VMs ...")
    scale = run_scale(scale_sizes, latency, BOOT_SECONDS, timing)
    say(f"      and by hosts: {', '.join(map(str, scale_hosts))} hosts of 100 VMs ...")
    by_hosts = run_scale_by_hosts(scale_hosts, latency, BOOT_SECONDS, timing)
    say(f"[5/5] one-hooks status on {', '.join(map(str, status_sizes))} VMs, median of {STATUS_RUNS} ...")
    status = run_status(status_sizes, latency, STATUS_RUNS)

    result: Dict[str, Any] = {
        "storm_vms": storm.vms,
        "storm_hosts": storm.hosts,
        "storm_wall_s": _r(storm.wall_s),
        "storm_speedup_vs_serial": _r(ratio(serial.wall_s, storm.wall_s), 2),
        "storm_speedup_vs_autostart": _r(ratio(autostart.wall_s, storm.wall_s), 2),
        "storm_ratio_to_bound": _r(ratio(storm.wall_s, bound), 2),
        "storm_lower_bound_s": _r(bound),
        "storm_host_hooks_only_wall_s": _r(host_only.wall_s),
        "storm_host_hooks_only_hook_cpu_s": _r(host_only.hook_cpu_s + host_only.outage_hook_cpu_s),
        "storm_host_hooks_only_resumed_twice": host_only.resumed_twice,
        "storm_serial_wall_s": _r(serial.wall_s),
        "storm_serial_extrapolated_from_vms": serial.measured_vms if serial.extrapolated else None,
        "storm_autostart_wall_s": _r(autostart.wall_s),
        "storm_calls_recovery": storm.calls_recovery,
        "storm_calls_per_vm": _r(storm.calls_recovery / storm.vms, 2),
        "storm_calls_by_method": storm.calls,
        "storm_node_sessions_per_host_max": storm.node_sessions_max,
        "storm_node_sessions_per_host_mean": _r(storm.node_sessions_mean, 1),
        "storm_hook_runs": storm.hook_runs + storm.outage_hook_runs,
        "storm_hook_cpu_s": _r(storm.hook_cpu_s + storm.outage_hook_cpu_s),
        "storm_resumed_twice": storm.resumed_twice,
        "storm_not_running": storm.not_running,
        "storm_settle_seconds": storm.settle_seconds,
        "storm_last_host_back_s": _r(storm.last_return_s),
        "sim_oned_timing": {"lcm_base_s": timing.lcm_base, "lcm_service_s": timing.lcm_service,
                            "dm_delay_s": timing.dm_delay, "host_spread_s": timing.host_spread,
                            "reconcile_after_s": list(timing.reconcile_after)},
        "hook_cpu_s_per_event": _r(storm.cpu_per_event, 4),
        "hook_startup_cpu_s": _r(startup.hook_cpu_s, 4),
        "hook_startup_wall_s": _r(startup.hook_wall_s, 4),
        "python_pass_cpu_s": _r(startup.pass_cpu_s, 4),
        "python_import_pyone_cpu_s": _r(startup.pyone_cpu_s, 4),
        "hook_startup_vs_import_pyone": _r(ratio(startup.hook_cpu_s, startup.pyone_cpu_s), 2),
        "hook_startup_actions_sent": startup.actions_sent,
        "hook_startup_host_info_calls": startup.host_info_calls,
        "hook_startup_watched_cpu_s": _r(startup.watched_cpu_s, 4),
        "hook_startup_full_hook_cpu_s": _r(startup.full_cpu_s, 4),
        "wrapper_overhead_ms": _r(wrap.overhead_ms, 3),
        "wrapper_direct_ms": _r(wrap.direct_wall_s * 1000, 3),
        "wrapper_wrapped_ms": _r(wrap.wrapped_wall_s * 1000, 3),
        "scale": [row.as_dict() for row in scale.rows],
        "scale_storm_growth_exponent": _r(scale.storm_exponent, 2),
        "scale_hook_cpu_growth_exponent": _r(scale.hook_exponent, 2),
        "scale_latency_divisor": scale.latency_divisor,
        "scale_by_hosts": [row.as_dict() for row in by_hosts.rows],
        "scale_by_hosts_storm_growth_exponent": _r(by_hosts.storm_exponent, 2),
        "status": [row.as_dict() for row in status],
        **{f"status_{key}_{row.vms}": _r(value) for row in status for key, value in (
            ("wall_s", row.wall_s), ("cpu_s", row.cpu_s), ("baseline_wall_s", row.baseline_wall_s),
            ("baseline_cpu_s", row.baseline_cpu_s), ("wall_ratio", row.wall_ratio),
            ("cpu_ratio", row.cpu_ratio))},
        "quick": args.quick,
        "machine": machine(),
        "bench_seconds": _r(time.monotonic() - began, 1),
    }
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(result, fh, sort_keys=True, indent=1)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print_tables(result, storm, serial, autostart, startup, wrap, scale, host_only, by_hosts)
        print(f"\n## one-hooks status (20 hosts, 2 down; median of {STATUS_RUNS}; baseline: a process that "
              "loads the configuration and reads the VM pool once)\n")
        print(status_table(status))
    return 0


def print_tables(r: Dict[str, Any], storm: Any, serial: Any, autostart: Any, startup: Any,
                 wrap: Any, scale: Any, host_only: Any, by_hosts: Any) -> None:
    """The human-readable report (Markdown tables)."""
    m = r["machine"]
    print(f"\nMachine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, "
          f"kernel {m['kernel']}; {'--quick' if r['quick'] else 'full'} run, {r['bench_seconds']} s\n")
    print(f"## Recovery storm: {storm.hosts} hosts x {storm.vms // storm.hosts} VMs = {storm.vms} VMs\n")
    print("| | wall until all RUNNING | vs one-hooks |")
    print("|---|---|---|")
    print(f"| one-hooks (real hooks, onehem-like runner, <= 10 at once) | {storm.wall_s:.2f} s | 1 |")
    extra = f" (extrapolated from {serial.measured_vms} VMs: {serial.notes[0]})" if serial.extrapolated else ""
    print(f"| one-hooks, host-reconnect hook only (VM hooks not registered) | {host_only.wall_s:.2f} s | "
          f"{host_only.wall_s / storm.wall_s:.2f} ({host_only.hook_runs + host_only.outage_hook_runs} hook "
          f"processes, {host_only.hook_cpu_s + host_only.outage_hook_cpu_s:.1f} s CPU) |")
    print(f"| (a) {serial.name}{extra} | {serial.wall_s:.1f} s | "
          f"one-hooks {r['storm_speedup_vs_serial']}x faster (target >= 10x) |")
    print(f"| (b) {autostart.name} | {autostart.wall_s:.2f} s | "
          f"one-hooks {r['storm_speedup_vs_autostart']}x faster |")
    print(f"| lower bound (the longest of: {storm.vms} x serial {REAL_LATENCY.serial * 1000:g} ms + parallel "
          f"{REAL_LATENCY.parallel * 1000:g} ms; oned's LCM queue, 2 x {storm.vms} x "
          f"{REAL_TIMING.lcm_service * 1000:g} ms; the last host back at {storm.last_return_s:.1f} s; "
          f"then boot {BOOT_SECONDS:g} s) | {r['storm_lower_bound_s']:.2f} s | "
          f"one-hooks at {r['storm_ratio_to_bound']}x of it (target <= 1.5x) |")
    print()
    print(f"- XML-RPC calls during recovery: {storm.calls_recovery} ({r['storm_calls_per_vm']} per VM); "
          f"node sessions per host: max {storm.node_sessions_max}, mean {storm.node_sessions_mean:.1f}")
    print(f"- hook processes: {r['storm_hook_runs']} ({storm.outage_hook_runs} during the outage, "
          f"{storm.hook_runs} after), CPU {r['storm_hook_cpu_s']} s = "
          f"{r['hook_cpu_s_per_event']} s per event (target <= 0.10 s)")
    print(f"- VMs resumed twice: {len(storm.resumed_twice)}; VMs not RUNNING at the end: {storm.not_running}; "
          f"[recovery] settle_seconds = {storm.settle_seconds:g}")
    print("\n## Hook start-up (vm-unknown with nothing to do: the VM is host-reconnect's)\n")
    print("| process | CPU (median) | wall (median) |")
    print("|---|---|---|")
    print(f"| `python3 -c pass` | {startup.pass_cpu_s * 1000:.0f} ms | {startup.pass_wall_s * 1000:.0f} ms |")
    print(f"| vm-unknown hook, host watched (first look, no oned call) | {startup.watched_cpu_s * 1000:.0f} ms "
          f"| {startup.watched_wall_s * 1000:.0f} ms |")
    print(f"| vm-unknown hook, host down (first look, one one.host.info) | {startup.hook_cpu_s * 1000:.0f} ms "
          f"| {startup.hook_wall_s * 1000:.0f} ms |")
    print(f"| the full hook (`one-hooks hook vm-unknown`), host down | {startup.full_cpu_s * 1000:.0f} ms | "
          f"{startup.full_wall_s * 1000:.0f} ms |")
    print(f"| `python3 -c \"import pyone\"` | {startup.pyone_cpu_s * 1000:.0f} ms | "
          f"{startup.pyone_wall_s * 1000:.0f} ms |")
    print(f"\nThe host-down hook costs {r['hook_startup_vs_import_pyone']}x the CPU of `import pyone` alone "
          f"({startup.runs} runs each; exit codes {startup.hook_codes}; one.host.info calls "
          f"{startup.host_info_calls}; actions sent: {startup.actions_sent}).")
    print(f"\n## CPU wrapper launch overhead (median of {wrap.runs})\n")
    print(f"direct {wrap.direct_wall_s * 1000:.2f} ms, through the wrapper {wrap.wrapped_wall_s * 1000:.2f} ms: "
          f"+{wrap.overhead_ms:.2f} ms per launch (target < 5 ms)")
    print(f"\n## Scale (latency / {scale.latency_divisor:g}, {scale.note})\n")
    print(scale.table())
    print(f"\nGrowth exponent (1.0 = linear): storm time {r['scale_storm_growth_exponent']}, "
          f"hook CPU per event {r['scale_hook_cpu_growth_exponent']} (0 = flat)")
    print(f"\n### Growing by hosts ({by_hosts.note})\n")
    print(by_hosts.table())
    print(f"\nGrowth exponent of storm time: {r['scale_by_hosts_storm_growth_exponent']} (1.0 = linear)")


if __name__ == "__main__":
    sys.exit(main())
