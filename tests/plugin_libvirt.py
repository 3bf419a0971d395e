"""Shared pytest fixtures (plugin_libvirt); filled in by its owner."""
