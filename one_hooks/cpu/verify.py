"""``one-hooks cpu verify``: check a node really gives KVM guests the host CPU.

Each check runs one read-only command on the node through ``[node] command``
(:class:`one_hooks.node.runner.Node`), then a pure function judges its output:

1. the wrapper's settings are there and name a real emulator that exists;
2. the wrapper is executable and not older (ctime) than that emulator:
   libvirt caches an emulator's capabilities keyed on its ctime, so after a
   QEMU upgrade the wrapper must be touched;
3. libvirt can probe the emulator (``virsh domcapabilities --emulatorbin``);
4. each running ``one-N`` domain's QEMU has exactly one ``-cpu`` and it is the
   host CPU (VMs started before the switch need poweroff + resume);
5. AppArmor / SELinux: the wrapper is allowed, and no denial is logged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import NodeError
from ..node.runner import ANY_CODE, Node, first_line
from . import wrapper as wrapper_mod

OK, WARNING, PROBLEM = "ok", "warning", "problem"
LIBVIRT_URI = "qemu:///system"
APPARMOR_FILES = ("/etc/apparmor.d/local/abstractions/libvirt-qemu", "/etc/apparmor.d/abstractions/libvirt-qemu")


@dataclass(frozen=True)
class Finding:
    """One verdict line about one host."""

    host: str
    level: str
    text: str

    def line(self) -> str:
        """As printed."""
        return f"{self.host}: {self.level}: {self.text}"


def judge_files(settings_text: Optional[str], stat_text: str, wrapper: str) -> Tuple[List[Tuple[str, str]], str]:
    """Checks 1-2 from ``cat SETTINGS`` and ``stat -L -c %n:%a:%Z WRAPPER CANDIDATES...``.

    Returns (level, text) pairs and the real emulator found ('' if none).
    """
    out: List[Tuple[str, str]] = []
    settings = wrapper_mod.Settings.parse(settings_text or "")
    if settings_text is None:
        out.append((WARNING, f"no {wrapper_mod.SETTINGS_NAME} beside the wrapper: built-in defaults apply"))
    stats: Dict[str, Tuple[int, int]] = {}
    for line in stat_text.splitlines():
        path, _, rest = line.rpartition(":")
        path, _, octal = path.rpartition(":")
        if path and octal and rest.isdigit():
            stats[path] = (int(octal, 8), int(rest))
    if wrapper not in stats:
        out.append((PROBLEM, f"wrapper {wrapper} is missing: run 'onehost sync --force' on the front-end"))
        return out, ""
    mode, wrapper_ctime = stats[wrapper]
    if mode & 0o005 != 0o005:
        out.append((PROBLEM, f"wrapper {wrapper} is mode {mode:o}: libvirt's QEMU user cannot run it "
                             f"(chmod 755 {wrapper})"))
    else:
        out.append((OK, f"wrapper {wrapper} is executable (mode {mode:o})"))
    real = next((p for p in settings.qemu if p in stats and p != wrapper), "")
    if not real:
        out.append((PROBLEM, f"none of the emulators {':'.join(settings.qemu)} exists on this node"))
        return out, ""
    out.append((OK, f"real emulator {real}, CPU argument {settings.cpu}"))
    if wrapper_ctime < stats[real][1]:
        out.append((PROBLEM, f"wrapper is older than {real} (ctime): libvirt keeps stale capabilities; "
                             f"run 'touch {wrapper}' on the node"))
    else:
        out.append((OK, "wrapper is not older than the real emulator (libvirt's capability cache is fresh)"))
    return out, real


def judge_probe(returncode: int, stdout: str, stderr: str, emulator: str) -> Tuple[str, str]:
    """Check 3 from ``virsh domcapabilities --emulatorbin EMULATOR --virttype kvm``."""
    if returncode == 0 and "<domain>kvm</domain>" in stdout:
        return OK, f"libvirt probes {emulator} for KVM"
    why = first_line(stderr) or first_line(stdout) or f"exit {returncode}"
    return PROBLEM, f"libvirt cannot probe {emulator}: {why}"


def cpu_args(cmdline: Sequence[str]) -> List[str]:
    """Every ``-cpu`` value of a QEMU command line."""
    return [cmdline[i + 1] for i, word in enumerate(cmdline[:-1]) if word in ("-cpu", "--cpu")]


def judge_vm(domain: str, cmdline: Sequence[str]) -> Tuple[str, str]:
    """Check 4 for one running domain, from its ``/proc/PID/cmdline`` words."""
    cpus = cpu_args(cmdline)
    if len(cpus) != 1:
        return PROBLEM, f"{domain}: QEMU got {len(cpus)} -cpu options {cpus}: exactly one is expected"
    if cpus[0] == "host" or cpus[0].startswith("host,"):
        return OK, f"{domain}: -cpu {cpus[0]}"
    return WARNING, (f"{domain}: -cpu {cpus[0]}: started before the switch (or CPU_MODEL set on the VM); "
                     "it gets the host CPU after poweroff + resume")


def judge_security(apparmor: str, apparmor_rules: str, selinux: str, label: str, kernel_log: Optional[str],
                   wrapper: str, real: str) -> List[Tuple[str, str]]:
    """Check 5 from AppArmor/SELinux state, the wrapper's rule or label, and the kernel log.

    ``wrapper`` is '' in native mode: there is no wrapper to allow or label,
    only denials of the emulator itself to look for.
    """
    out: List[Tuple[str, str]] = []
    confined = [name for name, on in (("AppArmor", apparmor.strip() == "Y"),
                                      ("SELinux", selinux.strip() == "Enforcing")) if on]
    if confined and not wrapper:
        out.append((OK, f"{' and '.join(confined)} on: native mode runs the stock emulator, "
                        "no wrapper to allow"))
    if apparmor.strip() == "Y" and wrapper:
        if wrapper in apparmor_rules:
            out.append((OK, "AppArmor: the wrapper is allowed in abstractions/libvirt-qemu"))
        else:
            out.append((PROBLEM, "AppArmor is on and does not allow the wrapper: add to "
                        f"{APPARMOR_FILES[0]} the lines '{wrapper} rix,', '{wrapper}.settings r,'"
                        f"{', ' + repr(real + ' rix,') if real else ''} and '/{{usr/,}}bin/dash rix,', "
                        "then 'systemctl reload apparmor'"))
    if selinux.strip() == "Enforcing" and wrapper:
        if "qemu_exec_t" in label:
            out.append((OK, "SELinux: the wrapper is labelled qemu_exec_t"))
        else:
            out.append((PROBLEM, "SELinux enforces and the wrapper is not qemu_exec_t: run "
                        f"\"semanage fcontext -a -t qemu_exec_t '{wrapper}'; restorecon -v {wrapper}\""))
    if kernel_log is None:
        out.append((WARNING, "could not read the kernel log (dmesg): denials not checked"))
    else:
        denials = [line.strip() for line in kernel_log.splitlines()
                   if ('apparmor="DENIED"' in line or "avc:  denied" in line)
                   and ("qemu" in line or wrapper_mod.WRAPPER_NAME in line)]
        for line in denials[-3:]:
            out.append((PROBLEM, f"denial in the kernel log: {line}"))
    if not out:
        out.append((OK, "no AppArmor or SELinux confinement here (DAC only)"))
    return out


_DOMAIN = re.compile(r"^one-\d+$")


def verify_host(node: Node, host: str, node_remotes: str = wrapper_mod.NODE_REMOTES,
                mode: str = "wrapper") -> List[Finding]:
    """Run every check on ``host``; a node that cannot be reached is one problem finding."""
    findings: List[Finding] = []

    def add(level: str, text: str) -> None:
        findings.append(Finding(host, level, text))

    def run(argv: List[str]) -> Tuple[int, str, str]:
        result = node.run(host, argv, ok_codes=ANY_CODE)
        return result.returncode, result.stdout, result.stderr

    wrapper = wrapper_mod.wrapper_path(node_remotes)
    try:
        emulator = wrapper
        real = ""
        if mode == "wrapper":
            code, settings_text, _ = run(["cat", wrapper_mod.settings_path(node_remotes)])
            settings = wrapper_mod.Settings.parse(settings_text if code == 0 else "")
            _, stats, _ = run(["stat", "-L", "-c", "%n:%a:%Z", wrapper, *settings.qemu])
            checks, real = judge_files(settings_text if code == 0 else None, stats, wrapper)
            for level, text in checks:
                add(level, text)
        else:
            emulator = wrapper_mod.ONE_DEFAULT_EMULATOR
        code, out, err = run(["virsh", "-c", LIBVIRT_URI, "domcapabilities", "--emulatorbin", emulator,
                              "--virttype", "kvm"])
        add(*judge_probe(code, out, err, emulator))
        code, out, err = run(["virsh", "-c", LIBVIRT_URI, "list", "--name"])
        domains = [d.strip() for d in out.splitlines() if _DOMAIN.match(d.strip())] if code == 0 else []
        if code != 0:
            add(PROBLEM, f"virsh list failed: {first_line(err) or code}")
        elif not domains:
            add(WARNING, "no running one-N domain to check: start or resume a VM, then verify again")
        for domain in domains:
            code, pid, _ = run(["cat", f"/run/libvirt/qemu/{domain}.pid"])
            if code != 0 or not pid.strip().isdigit():
                add(WARNING, f"{domain}: no pid file, not checked")
                continue
            code, cmdline, _ = run(["cat", f"/proc/{pid.strip()}/cmdline"])
            add(*judge_vm(domain, cmdline.split("\0")))
        _, apparmor, _ = run(["cat", "/sys/module/apparmor/parameters/enabled"])
        rules = ""
        if apparmor.strip() == "Y" and mode == "wrapper":
            _, rules, _ = run(["cat", *APPARMOR_FILES])
        code, selinux, _ = run(["getenforce"])
        selinux = selinux if code == 0 else ""
        label = ""
        if selinux.strip() == "Enforcing" and mode == "wrapper":
            _, label, _ = run(["ls", "-Z", wrapper])
        code, log, _ = run(["dmesg"])
        for level, text in judge_security(apparmor, rules, selinux, label, log if code == 0 else None,
                                          wrapper if mode == "wrapper" else "", real):
            add(level, text)
    except NodeError as exc:
        add(PROBLEM, f"cannot check: {exc}")
    return findings
