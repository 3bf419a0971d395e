"""Shared pytest fixtures (plugin_sim); filled in by its owner."""
