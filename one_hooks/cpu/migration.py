"""Is live migration of host-CPU VMs safe inside each cluster? (pure)

A VM with ``-cpu host`` carries the exact CPU of the host it booted on; live
migrating it to a host whose CPU lacks a feature crashes or hangs the guest.
OpenNebula's KVM monitoring reports per host (DESIGN.md section 5):

* ``KVM_CPU_MODEL``: libvirt's name for the host CPU (e.g. ``EPYC-Rome``);
* ``KVM_CPU_MODELS``: the named models this host can run, space separated,
  in libvirt's order (older models first within a family);
* ``KVM_CPU_FEATURES`` (6.8+): features the host has beyond its model, comma
  separated.

Hosts of one cluster are "uniform" when model and features match. Otherwise
the report names the differences and the newest model every host can run:
``CPU_MODEL = [ MODEL = "<it>" ]`` on the cluster keeps migration safe.
Even uniform hosts must run the same QEMU and microcode: that is said, not checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ..oned.model import Host


@dataclass(frozen=True)
class HostCpu:
    """The CPU facts one host's monitoring reported."""

    host_id: int
    name: str
    cluster_id: int
    model: str
    models: Tuple[str, ...]
    features: FrozenSet[str]

    @classmethod
    def of(cls, host: Host) -> "HostCpu":
        """Read them from a parsed host (missing attributes: empty)."""
        t = host.template
        return cls(
            host.id, host.name, host.cluster_id,
            t.get("KVM_CPU_MODEL", "").strip(),
            tuple(t.get("KVM_CPU_MODELS", "").split()),
            frozenset(f.strip() for f in t.get("KVM_CPU_FEATURES", "").split(",") if f.strip()),
        )


@dataclass(frozen=True)
class ClusterReport:
    """The verdict for one cluster, with the reasons as lines."""

    cluster_id: int
    hosts: Tuple[str, ...]
    safe: bool
    reasons: Tuple[str, ...]
    common_model: Optional[str]

    def lines(self) -> List[str]:
        """Human lines: verdict first, then the reasons."""
        names = ", ".join(self.hosts)
        if self.safe:
            head = f"cluster {self.cluster_id}: hosts ({names}) have the same CPU: live migration of " \
                   "host-CPU VMs is safe if they also run the same QEMU and microcode"
        else:
            head = f"cluster {self.cluster_id}: UNSAFE to live-migrate host-CPU VMs between ({names})"
        out = [head] + [f"  {r}" for r in self.reasons]
        if not self.safe:
            if self.common_model:
                out.append(f"  newest model common to all hosts: {self.common_model} "
                           f"(set CPU_MODEL = [ MODEL = \"{self.common_model}\" ] on the cluster "
                           "for VMs that must live-migrate)")
            else:
                out.append("  no named model is common to all hosts: keep host-CPU VMs on one host "
                           "or migrate them cold (poweroff, migrate, resume)")
        return out


def common_model(hosts: Sequence[HostCpu]) -> Optional[str]:
    """The newest model every host can run: the last, in the first host's order, that all list."""
    listing = [h for h in hosts if h.models]
    if not listing or len(listing) != len(hosts):
        return None
    shared = set(listing[0].models)
    for h in listing[1:]:
        shared &= set(h.models)
    ordered = [m for m in listing[0].models if m in shared]
    return ordered[-1] if ordered else None


def check_cluster(cluster_id: int, hosts: Sequence[HostCpu]) -> ClusterReport:
    """Compare the hosts of one cluster."""
    names = tuple(h.name for h in hosts)
    reasons: List[str] = []
    unknown = [h.name for h in hosts if not h.model]
    if unknown:
        reasons.append("no KVM_CPU_MODEL reported (not monitored yet, or not KVM): " + ", ".join(unknown))
    models: Dict[str, List[str]] = {}
    for h in hosts:
        if h.model:
            models.setdefault(h.model, []).append(h.name)
    if len(models) > 1:
        reasons.append("different CPU models: " + "; ".join(
            f"{model} on {', '.join(on)}" for model, on in sorted(models.items())))
    known = [h for h in hosts if h.model]
    if known:
        everywhere = frozenset.intersection(*(h.features for h in known))
        for h in known:
            extra = sorted(h.features - everywhere)
            if extra:
                reasons.append(f"{h.name} has features the others lack: {', '.join(extra)}")
    safe = not reasons and len(hosts) > 0
    return ClusterReport(cluster_id, names, safe, tuple(reasons), None if safe else common_model(hosts))


def check(hosts: Iterable[Host], cluster_id: Optional[int] = None) -> List[ClusterReport]:
    """One report per cluster (or only ``cluster_id``), clusters in ID order."""
    by_cluster: Dict[int, List[HostCpu]] = {}
    for host in hosts:
        if cluster_id is None or host.cluster_id == cluster_id:
            by_cluster.setdefault(host.cluster_id, []).append(HostCpu.of(host))
    return [check_cluster(cid, sorted(found, key=lambda h: h.host_id))
            for cid, found in sorted(by_cluster.items())]
