"""Shared fixtures live in plugin modules, one per real component they start."""
pytest_plugins = ["tests.plugin_sim", "tests.plugin_sshd", "tests.plugin_libvirt"]
