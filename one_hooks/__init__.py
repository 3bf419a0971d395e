"""one-hooks: self-healing for OpenNebula KVM clouds.

Outage recovery (state hooks that check iSCSI on a node and resume the VMs an
outage left in UNKNOWN or POWEROFF) and host-CPU tooling for KVM guests.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
