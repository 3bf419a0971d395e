"""Shared pytest fixtures (plugin_sshd); filled in by its owner."""
