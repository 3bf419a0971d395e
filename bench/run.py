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
5. the recovery storm on a REAL oned (6.10.5 and 7.4.0, ``../shared/opennebula``
   rigs): one-hooks fired by oned's own onehem vs an ideal resume script vs
   the old one-CLI-process-per-VM procedure (``bench/realstorm.py``);
6. evacuating a dead host on a REAL oned: from the end of the grace to all of
   its 90 VMs RUNNING elsewhere, one-hooks' host-error hook vs an ideal script
   of 8 parallel migrates (``bench/evacuate.py``);
7. ``one-hooks status`` on 1,000 and 10,000 VMs vs one VM pool read alone
   (``bench/status.py``).

``--quick`` runs small sizes and leaves the real oned out (about a minute);
``--real VERSIONS`` chooses the real oned versions (``none``: no real oned; by
default both when the rigs are there), ``--only-real`` runs only benchmark 5;
``--evacuate VERSIONS`` chooses the versions of benchmark 6 (default 6.10.5
when the rigs are there, not with ``--quick``; ``none``), ``--only-evacuate``
runs only it; ``--json`` prints one JSON object instead of the tables. Nothing here asserts
a threshold: the targets of issues 6 and 9 are printed beside each figure.
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
from evacuate import EvacuationResult, run_real_evacuation  # noqa: E402
from realstorm import STORM_TIMEOUT, RealStormResult, run_real_storm  # noqa: E402
from scale import run_scale, run_scale_by_hosts  # noqa: E402
from startup import run_startup  # noqa: E402
from status import run_status, table as status_table  # noqa: E402
from storm import lower_bound, ratio, run_autostart, run_serial_pyone, run_storm  # noqa: E402
from wrapper import run_wrapper  # noqa: E402

from one_hooks.sim.oned import REAL_LATENCY, REAL_TIMING  # noqa: E402
from tests.oned_rig import HOSTS, VERSIONS, RigError, available  # noqa: E402

#: A VM boots (BOOT_* -> RUNNING) this long after its resume is accepted.
BOOT_SECONDS = 1.0
#: ``one-hooks status`` runs per size (median).
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
    parser.add_argument("--real", metavar="VERSIONS", default=None,
                        help="real oned versions for the real storm, comma separated, or 'none' "
                             f"(default: {','.join(VERSIONS)} when ../shared/opennebula has the rigs; "
                             "none with --quick)")
    parser.add_argument("--only-real", action="store_true", help="run only the real-oned storm")
    parser.add_argument("--keep", action="store_true",
                        help="keep the real storm's files (one-hooks' log, oned's logs and database)")
    parser.add_argument("--evacuate", metavar="VERSIONS", default=None,
                        help="real oned versions for the evacuation benchmark, comma separated, or 'none' "
                             f"(default: {VERSIONS[0]} when the rigs are there; none with --quick)")
    parser.add_argument("--only-evacuate", action="store_true", help="run only the evacuation benchmark")
    args = parser.parse_args(argv)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else \
        (lambda *a: print(*a, flush=True))
    evacuate = _evacuate_versions(parser, args)
    real = [] if args.only_evacuate else _real_versions(parser, args)
    if not real and args.real is None and not args.quick and not args.only_evacuate:
        say(f"(no recovery storm on a real oned: {available()})")
    began = time.monotonic()
    result: Dict[str, Any] = {}
    runs: List[RealStormResult] = []
    errors: Dict[str, str] = {}
    simulated = not (args.only_real or args.only_evacuate)
    if simulated:
        sim_tables = run_simulated(args, say, result)
    if real:
        say(f"[real] recovery storm on a real oned: {', '.join(real)} ...")
        for version in real:
            try:
                runs.append(run_real_storm(version, say=say, keep=args.keep))
                say(f"      oned {version}: {runs[-1].as_dict()}")
            except RigError as exc:  # the other version still runs; the error is in the result
                errors[version] = str(exc)
                say(f"      oned {version}: not measured: {exc}")
        result.update(real_keys(runs, errors))
    if evacuate:
        say(f"[evacuate] a dead host evacuated on a real oned: {', '.join(evacuate)} ...")
        evacuations = [run_real_evacuation(version, say=say) for version in evacuate]
        result.update(evacuate_keys(evacuations))
    result.update({"quick": args.quick, "machine": machine(), "bench_seconds": _r(time.monotonic() - began, 1)})
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(result, fh, sort_keys=True, indent=1)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    m = result["machine"]
    print(f"\nMachine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, "
          f"kernel {m['kernel']}; {'--quick' if result['quick'] else 'full'} run, {result['bench_seconds']} s\n")
    if simulated:
        print_tables(result, *sim_tables)
    if runs:
        print_real(runs)
    for version, error in errors.items():
        print(f"\n{version}: the real storm was not measured: {error}")
    if evacuate:
        print_evacuate(evacuations)
    return 0


def _evacuate_versions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> List[str]:
    wanted = args.evacuate
    if wanted is None:
        wanted = "none" if (args.quick or args.only_real or available()) else VERSIONS[0]
    if wanted == "none":
        if args.only_evacuate:
            parser.error("--only-evacuate needs a real oned version (--evacuate)")
        return []
    versions = [v.strip() for v in wanted.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VERSIONS]
    if unknown:
        parser.error(f"--evacuate: unknown version(s) {', '.join(unknown)} (known: {', '.join(VERSIONS)}, none)")
    why = available()
    if why:
        parser.error(f"--evacuate {wanted}: {why}; use --evacuate none")
    return versions


def evacuate_keys(runs: List[EvacuationResult]) -> Dict[str, Any]:
    """Benchmark 6's JSON keys: the first version's figures at top level, every version's in a map."""
    first = runs[0].as_dict()
    return {
        "evacuate_version": first["version"],
        "evacuate_vms": first["vms"],
        "evacuate_grace_s": first["grace_s"],
        "evacuate_wall_s": first["wall_s"],
        "evacuate_ideal_wall_s": first["ideal_wall_s"],
        "evacuate_ratio_to_ideal": first["ratio_to_ideal"],
        "evacuate_not_running": first["not_running"],
        "evacuate_moved_more_than_once": first["moved_more_than_once"],
        "evacuate_false_failures": first["false_failures"],
        "evacuate_by_version": {run.version: run.as_dict() for run in runs},
    }


def print_evacuate(runs: List[EvacuationResult]) -> None:
    """Benchmark 6's table."""
    print(f"\n## Evacuating a dead host on a real oned ({runs[0].vms} VMs on h1, moved to h2 and h3)\n")
    print("| oned | way | wall: end of the grace -> all RUNNING elsewhere | ratio |")
    print("|---|---|---|---|")
    for run in runs:
        d = run.as_dict()
        print(f"| {run.version} | one-hooks (host-error hook fired by oned's onehem: fence, disable, plan, "
              f"gate, 8 moves at once) | {d['wall_s']} s | {d['ratio_to_ideal']}x the ideal |")
        print(f"| {run.version} | ideal: 8 parallel one.vm.migrate the moment the grace ends | "
              f"{d['ideal_wall_s']} s | 1 |")
    print()
    for run in runs:
        d = run.as_dict()
        print(f"- {run.version}: VMs not RUNNING elsewhere at the end {d['not_running']}, moved more than once "
              f"{d['moved_more_than_once']}, false failures {d['false_failures']}, the watcher's exit code "
              f"{d['watcher_exit_code']}")


def _real_versions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> List[str]:
    wanted = args.real
    if wanted is None:  # by default: both versions, when the rigs are here (not with --quick)
        wanted = "none" if (args.quick and not args.only_real) else ",".join(VERSIONS)
        if available() and not args.only_real:
            wanted = "none"
    if wanted == "none":
        if args.only_real:
            parser.error("--only-real needs a real oned version (--real)")
        return []
    versions = [v.strip() for v in wanted.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VERSIONS]
    if unknown:
        parser.error(f"--real: unknown version(s) {', '.join(unknown)} (known: {', '.join(VERSIONS)}, none)")
    why = available()
    if why:
        parser.error(f"--real {wanted}: {why}; use --real none")
    return versions


def run_simulated(args: argparse.Namespace, say: Any, result: Dict[str, Any]) -> tuple:
    """Benchmarks 1-4 and 7 on the simulated oned; their keys go into ``result``."""

    if args.quick:
        hosts, per_host, sample_a, startup_runs, wrapper_runs = 10, 20, 10, 5, 200
        scale_sizes, scale_hosts, status_sizes = (100, 300), (1, 3), (1000,)
    else:
        hosts, per_host, sample_a, startup_runs, wrapper_runs = 50, 40, 100, 21, 200
        scale_sizes, scale_hosts, status_sizes = (100, 1000, 10000), (10, 20, 40), (1000, 10000)
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
    bound = lower_bound(storm.vms, latency, BOOT_SECONDS, timing, storm.last_return_s, storm.reported_vms)
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

    result.update({
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
        # host-reconnect's hook process and its detached settle watcher, per host (only hook registered)
        "host_reconnect_cpu_s_per_host": _r((host_only.hook_cpu_s + host_only.outage_hook_cpu_s) / host_only.hosts),
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
        "storm_reported_gone_vms": storm.reported_vms,
        "storm_lcm_items": storm.lcm_items,
        "old_procedure_over_bound": _r(ratio(serial.wall_s, bound), 2),
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
    })
    return storm, serial, autostart, startup, wrap, scale, host_only, by_hosts, status


def real_keys(runs: List[RealStormResult], errors: Dict[str, str]) -> Dict[str, Any]:
    """The real storm's JSON keys: the first version's figures at top level, every version's in a map."""
    by_version: Dict[str, Any] = {version: {"version": version, "error": error} for version, error in errors.items()}
    by_version.update({run.version: run.as_dict() for run in runs})
    if not runs:
        return {"real_storm_by_version": by_version}
    first = runs[0].as_dict()
    return {
        "real_storm_version": first["version"],
        "real_storm_vms": first["vms"],
        "real_storm_wall_s": first["wall_s"],
        "real_storm_ideal_wall_s": first["ideal_wall_s"],
        "real_storm_ratio_to_ideal": first["ratio_to_ideal"],
        "real_storm_old_wall_s": first["old_wall_s"],
        "real_storm_old_extrapolated_from_vms": first["old_extrapolated_from_vms"],
        "real_storm_speedup_vs_old": first["speedup_vs_old"],
        "real_false_failures": first["false_failures"],
        "real_storm_not_running": first["not_running"],
        "real_storm_by_version": by_version,
    }


def print_real(runs: List[RealStormResult]) -> None:
    """The real storm's table, one block of rows per version."""
    print(f"\n## Recovery storm on a real oned ({runs[0].vms} VMs on {len(HOSTS)} hosts, all cut, "
          "domains gone)\n")
    print("| oned | way | wall: first host MONITORED -> all RUNNING | ratio |")
    print("|---|---|---|---|")
    for run in runs:
        d = run.as_dict()
        wall = f"{d['wall_s']} s" if d["wall_s"] is not None else f"not all RUNNING in {STORM_TIMEOUT:g} s"
        ideal = f"{d['ideal_wall_s']} s" if d["ideal_wall_s"] is not None else "not all RUNNING"
        print(f"| {run.version} | one-hooks (hooks fired by oned's onehem) | {wall} | "
              f"{d['ratio_to_ideal']}x the ideal (target <= 1.15) |")
        print(f"| {run.version} | ideal: 8 parallel resumes per host the moment it is MONITORED | {ideal} | 1 |")
        print(f"| {run.version} | old: one `onevm resume` process per VM, serially (extrapolated from "
              f"{d['old_extrapolated_from_vms']} VMs: {d['old_per_vm_s']} s each) | {d['old_wall_s']} s to send "
              f"the resumes | one-hooks {d['speedup_vs_old']}x faster (target >= 10) |")
    print()
    for run in runs:
        d = run.as_dict()
        print(f"- {run.version}: false failures {d['false_failures']} (target 0); hook executions not 0: "
              f"{len(run.hook_failures)}; VMs not RUNNING at the end {d['not_running']}; resume calls "
              f"{d['resume_calls']} ({d['vms_resumed_more_than_once']} VMs more than once); hosts came back "
              f"{d['hosts_back_spread_s']} s apart")
        for line in run.false_failures[:5]:
            print(f"  - {line}")


def print_tables(r: Dict[str, Any], storm: Any, serial: Any, autostart: Any, startup: Any,
                 wrap: Any, scale: Any, host_only: Any, by_hosts: Any, status: Any) -> None:
    """The human-readable report of the simulated oned's benchmarks (Markdown tables)."""
    print(f"## Recovery storm: {storm.hosts} hosts x {storm.vms // storm.hosts} VMs = {storm.vms} VMs\n")
    print("| | wall until all RUNNING | vs one-hooks |")
    print("|---|---|---|")
    print(f"| one-hooks (real hooks, onehem-like runner, <= 10 at once) | {storm.wall_s:.2f} s | 1 |")
    extra = f" (extrapolated from {serial.measured_vms} VMs: {serial.notes[0]})" if serial.extrapolated else ""
    print(f"| one-hooks, host-reconnect hook only (VM hooks not registered) | {host_only.wall_s:.2f} s | "
          f"{host_only.wall_s / storm.wall_s:.2f} ({host_only.hook_runs + host_only.outage_hook_runs} hook "
          f"processes, {host_only.hook_cpu_s + host_only.outage_hook_cpu_s:.1f} s CPU: "
          f"{r['host_reconnect_cpu_s_per_host']} s per host, hook and settle watcher) |")
    print(f"| (a) {serial.name}{extra} | {serial.wall_s:.1f} s | "
          f"one-hooks {r['storm_speedup_vs_serial']}x faster (target >= 10x) |")
    print(f"| (b) {autostart.name} (started once every host is back and its report applied: it waits for "
          f"neither the hosts' return nor the monitor's items) | {autostart.wall_s:.2f} s | "
          f"one-hooks {r['storm_speedup_vs_autostart']}x faster |")
    print(f"| lower bound (the longest of: {storm.vms} x serial {REAL_LATENCY.serial * 1000:g} ms + parallel "
          f"{REAL_LATENCY.parallel * 1000:g} ms, then applied and booted; oned's LCM queue, "
          f"(2 x {storm.vms} + {storm.reported_vms} monitor reports) x {REAL_TIMING.lcm_service * 1000:g} ms; "
          f"the last host back at {storm.last_return_s:.1f} s, then boot {BOOT_SECONDS:g} s) | "
          f"{r['storm_lower_bound_s']:.2f} s | one-hooks at {r['storm_ratio_to_bound']}x of it (target <= 1.5x); "
          f"(a) at {r['old_procedure_over_bound']}x of it |")
    print()
    print(f"- oned's LCM queued {storm.lcm_items} items from power-back until all RUNNING "
          f"(2 per VM resumed = {2 * storm.vms}, {storm.reported_vms} monitor poweroffs)")
    print(f"- XML-RPC calls during recovery: {storm.calls_recovery} ({r['storm_calls_per_vm']} per VM); "
          f"node sessions per host: max {storm.node_sessions_max}, mean {storm.node_sessions_mean:.1f}")
    print(f"- hook processes: {r['storm_hook_runs']} ({storm.outage_hook_runs} during the outage, "
          f"{storm.hook_runs} after), CPU {r['storm_hook_cpu_s']} s = "
          f"{r['hook_cpu_s_per_event']} s per event (target <= 0.05 s)")
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
    print(f"\n## one-hooks status (20 hosts, 2 down; median of {STATUS_RUNS}; baseline: a process that "
          "loads the configuration and reads the VM pool once)\n")
    print(status_table(status))


if __name__ == "__main__":
    sys.exit(main())
