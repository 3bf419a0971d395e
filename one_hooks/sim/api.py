"""The XML-RPC methods of the simulated oned, with oned's argument lists.

Each function takes the arguments after the session (checked by the server)
and returns the answer's value or raises :class:`Refused`.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Protocol

from ..errors import UsageError
from ..oned.model import VmState
from . import xmlout
from .cloud import Cloud
from .faults import INTERNAL, NO_EXISTS, Refused
from .hookrun import HookRunner
from .hooks import HookRegistry
from .objects import SimCluster, merge_attrs
from .tmpl import parse


class Served(Protocol):
    """What the methods use of the simulated oned (:class:`~one_hooks.sim.oned.SimOned` is one).

    Declared here so that this module needs nothing from ``sim.oned``, which
    imports it to build its server.
    """

    cloud: Cloud
    hooks: HookRegistry
    runner: HookRunner
    version: str

    def get_cluster(self, cluster_id: int, method: str) -> SimCluster:
        """The cluster, or :class:`Refused` (NO_EXISTS) naming ``method``."""
        ...


def _template(text: str, method: str) -> list:
    try:
        return parse(text)
    except UsageError as error:
        raise Refused(INTERNAL, f"[{method}] Parse error: {error}") from None


def _in_range(obj_id: int, start: int, end: int) -> bool:
    return (start < 0 or obj_id >= start) and (end < 0 or obj_id <= end)


def build_methods(sim: Served) -> Dict[str, Callable[..., object]]:
    """Method name -> implementation, all bound to ``sim``."""
    cloud, hooks = sim.cloud, sim.hooks

    def version() -> str:
        return sim.version

    def host_info(host_id: int, decrypt: bool = False) -> str:
        with cloud.lock:
            host = cloud.get_host(host_id)
            return xmlout.compact(xmlout.host_element(host, cloud.host_vms(host_id)))

    def hostpool_info() -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.pool("HOST_POOL", (
                xmlout.host_element(h, cloud.host_vms(h.id))
                for h in sorted(cloud.tables.hosts.values(), key=lambda h: h.id))))

    def host_update(host_id: int, text: str, append: int = 0) -> int:
        with cloud.lock:
            host = cloud.get_host(host_id, "one.host.update")
            new = _template(text, "one.host.update")
            attrs = list(host.template) if append else []
            merge_attrs(attrs, new)
            host.template = attrs
            return host_id

    def host_allocate(name: str, im_mad: str, vm_mad: str, cluster_id: int = -1) -> int:
        return cloud.add_host(name, max(cluster_id, 0), im_mad=im_mad, vm_mad=vm_mad)

    def vm_info(vm_id: int, decrypt: bool = False) -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.vm_element(cloud.get_vm(vm_id), v7=cloud.v7))

    def _vms(filter_flag: int, start: int, end: int, state: int) -> list:
        chosen = []
        for vm in sorted(cloud.tables.vms.values(), key=lambda v: v.id, reverse=True):
            if filter_flag >= 0 and vm.uid != filter_flag:
                continue
            if not _in_range(vm.id, start, end):
                continue
            if state == -1 and vm.state == VmState.DONE:
                continue
            if state >= 0 and vm.state != state:
                continue
            chosen.append(vm)
        return chosen

    def vmpool_info(filter_flag: int = -2, start: int = -1, end: int = -1, state: int = -1,
                    *_query: object) -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.pool(
                "VM_POOL", (xmlout.vm_short_element(vm) for vm in _vms(filter_flag, start, end, state))))

    def vmpool_infoextended(filter_flag: int = -2, start: int = -1, end: int = -1,
                            state: int = -1, *_query: object) -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.pool("VM_POOL", (
                xmlout.vm_element(vm, history="last", v7=cloud.v7)
                for vm in _vms(filter_flag, start, end, state))))

    def vm_action(action: str, vm_id: int) -> int:
        cloud.action(action, vm_id)
        return vm_id

    def vm_migrate(vm_id: int, host_id: int, live: bool = False, enforce: bool = False, ds_id: int = -1,
                   kind: int = 0) -> int:
        cloud.migrate(vm_id, host_id, bool(live), bool(enforce), ds_id, kind)
        return vm_id

    def host_status(host_id: int, status: int) -> int:
        cloud.host_status(host_id, status)
        return host_id

    def datastorepool_info() -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.pool("DATASTORE_POOL", (
                xmlout.datastore_element(ds)
                for ds in sorted(cloud.tables.datastores.values(), key=lambda d: -d.id))))

    def datastore_info(ds_id: int, decrypt: bool = False) -> str:
        with cloud.lock:
            ds = cloud.tables.datastores.get(ds_id)
            if ds is None:
                raise Refused(NO_EXISTS, f"[one.datastore.info] Error getting datastore [{ds_id}].")
            return xmlout.compact(xmlout.datastore_element(ds))

    def vm_lock(vm_id: int, level: int = 4, test: bool = False) -> int:
        cloud.lock_vm(vm_id, level)
        return vm_id

    def vm_unlock(vm_id: int) -> int:
        cloud.unlock_vm(vm_id)
        return vm_id

    def hook_allocate(text: str) -> int:
        with cloud.lock:
            return hooks.allocate(text)

    def hook_update(hook_id: int, text: str, append: int = 0) -> int:
        with cloud.lock:
            hooks.update(hook_id, text, bool(append))
            return hook_id

    def hook_delete(hook_id: int) -> int:
        with cloud.lock:
            hooks.delete(hook_id)
            return hook_id

    def hook_info(hook_id: int, decrypt: bool = False) -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.hook_element(hooks.get(hook_id, "one.hook.info"), True))

    def hookpool_info(filter_flag: int = -2, start: int = -1, end: int = -1) -> str:
        with cloud.lock:
            chosen: List = [h for h in sorted(cloud.tables.hooks.values(), key=lambda h: -h.id)
                            if _in_range(h.id, start, end)]
            return xmlout.compact(xmlout.pool(
                "HOOK_POOL", (xmlout.hook_element(h, False) for h in chosen)))

    def hook_retry(hook_id: int, execution_id: int) -> int:
        with cloud.lock:
            job = hooks.retry_job(hook_id, execution_id)
        sim.runner.submit(job)
        return hook_id

    def cluster_info(cluster_id: int, decrypt: bool = False) -> str:
        with cloud.lock:
            cluster = sim.get_cluster(cluster_id, "one.cluster.info")
            members = [h.id for h in cloud.tables.hosts.values() if h.cluster_id == cluster_id]
            return xmlout.compact(xmlout.cluster_element(cluster, members))

    def clusterpool_info() -> str:
        with cloud.lock:
            return xmlout.compact(xmlout.pool("CLUSTER_POOL", (
                xmlout.cluster_element(c, [h.id for h in cloud.tables.hosts.values()
                                           if h.cluster_id == c.id])
                for c in sorted(cloud.tables.clusters.values(), key=lambda c: c.id))))

    def cluster_update(cluster_id: int, text: str, append: int = 0) -> int:
        with cloud.lock:
            cluster = sim.get_cluster(cluster_id, "one.cluster.update")
            attrs = list(cluster.template) if append else []
            merge_attrs(attrs, _template(text, "one.cluster.update"))
            cluster.template = attrs
            return cluster_id

    return {
        "one.system.version": version,
        "one.host.info": host_info,
        "one.hostpool.info": hostpool_info,
        "one.host.update": host_update,
        "one.host.allocate": host_allocate,
        "one.vm.info": vm_info,
        "one.vmpool.info": vmpool_info,
        "one.vmpool.infoextended": vmpool_infoextended,
        "one.vm.action": vm_action,
        "one.vm.migrate": vm_migrate,
        "one.host.status": host_status,
        "one.datastorepool.info": datastorepool_info,
        "one.datastore.info": datastore_info,
        "one.vm.lock": vm_lock,
        "one.vm.unlock": vm_unlock,
        "one.hook.allocate": hook_allocate,
        "one.hook.update": hook_update,
        "one.hook.delete": hook_delete,
        "one.hook.info": hook_info,
        "one.hookpool.info": hookpool_info,
        "one.hook.retry": hook_retry,
        "one.cluster.info": cluster_info,
        "one.clusterpool.info": clusterpool_info,
        "one.cluster.update": cluster_update,
    }
