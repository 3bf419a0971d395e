"""The CPU switch in ``vmm_exec_kvm.conf``: pure text transforms, then one writer.

Two switches, both OpenNebula's own attributes (DESIGN.md section 5):

* native: ``CPU_MODEL = [ MODEL = "host-passthrough" ]`` (libvirt then runs
  ``-cpu host,migratable=on``);
* wrapper: ``EMULATOR = <the one-hooks wrapper>`` (the wrapper turns libvirt's
  ``-cpu`` into the configured host CPU argument).

The transforms go text -> text through :mod:`one_hooks.oned.template`, so every
other byte of the file (comments, the commented ``#EMULATOR``/``#CPU_MODEL``
defaults, layout) stays as it was. :func:`apply` writes a switch: backup
first (once), atomic replace through :mod:`one_hooks.fsio` keeping
mode/owner/group, result re-parsed before it replaces the original.
:func:`revert`, the only other writer, puts the backup back byte for byte.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Optional

from .. import fsio
from ..errors import CpuError, UsageError
from ..oned.template import Template, parse

HOST_PASSTHROUGH = "host-passthrough"
BACKUP_SUFFIX = ".one-hooks-backup"
MANAGED = ("EMULATOR", "CPU_MODEL")


@dataclass(frozen=True)
class ConfState:
    """What a driver config file says about the CPU switch."""

    emulator: Optional[str]
    cpu_model: Optional[str]

    @property
    def native(self) -> bool:
        """CPU_MODEL asks for the host CPU."""
        return self.cpu_model == HOST_PASSTHROUGH

    def wrapper(self, wrapper_path: str) -> bool:
        """EMULATOR points at the wrapper."""
        return self.emulator == wrapper_path


def state_of(text: str, path: str = "") -> ConfState:
    """Read the switch from config text (refuses what it cannot parse)."""
    tmpl = parse(text, path)
    emulator = tmpl.get("EMULATOR")
    model = tmpl.get("CPU_MODEL")
    return ConfState(
        emulator if isinstance(emulator, str) else None,
        model.get("MODEL") if isinstance(model, dict) else None,
    )


def _insert_point(tmpl: Template, name: str) -> Optional[int]:
    """The line after the shipped commented default (``#CPU_MODEL = ...``), if the file has one."""
    match = re.search(rf"^[ \t]*#[ \t]*{name}[ \t]*=.*\n", tmpl.text, re.MULTILINE | re.IGNORECASE)
    return match.end() if match and match.end() < len(tmpl.text) else None


def set_native(text: str, path: str = "") -> str:
    """``CPU_MODEL = [ MODEL = "host-passthrough" ]``, keeping other CPU_MODEL keys (e.g. FEATURES)."""
    tmpl = parse(text, path)
    current = tmpl.get("CPU_MODEL")
    value = dict(current) if isinstance(current, dict) else {}
    value["MODEL"] = HOST_PASSTHROUGH
    tmpl.set("CPU_MODEL", value, insert_at=_insert_point(tmpl, "CPU_MODEL"))
    return tmpl.text


def unset_native(text: str, path: str = "") -> str:
    """Remove CPU_MODEL entirely."""
    tmpl = parse(text, path)
    tmpl.unset("CPU_MODEL")
    return tmpl.text


def set_emulator(text: str, emulator: str, path: str = "") -> str:
    """``EMULATOR = "<emulator>"``."""
    if not os.path.isabs(emulator):
        raise UsageError(f"EMULATOR must be an absolute path, not {emulator!r}")
    tmpl = parse(text, path)
    tmpl.set("EMULATOR", emulator, insert_at=_insert_point(tmpl, "EMULATOR"))
    return tmpl.text


def unset_emulator(text: str, path: str = "") -> str:
    """Remove EMULATOR entirely (oned then falls back to /usr/bin/qemu-kvm-one)."""
    tmpl = parse(text, path)
    tmpl.unset("EMULATOR")
    return tmpl.text


def restore_managed(text: str, original: str, path: str = "") -> str:
    """Put EMULATOR and CPU_MODEL back to what ``original`` had, touching nothing else.

    Used by ``disable`` when the file changed in other ways since the backup
    was made (then a byte-for-byte restore would undo someone else's edit).
    """
    before = parse(original, path + BACKUP_SUFFIX)
    tmpl = parse(text, path)
    for name in MANAGED:
        value = before.get(name)
        if value is None:
            tmpl.unset(name)
        else:
            tmpl.set(name, value, insert_at=_insert_point(tmpl, name))
    return tmpl.text


def without_managed(text: str, path: str = "") -> dict:
    """Every definition except the managed ones: what must not change under us."""
    return {n: v for n, v in parse(text, path).items() if n not in MANAGED}


def _stripped(text: str, path: str) -> str:
    """The text with the managed definitions removed."""
    tmpl = parse(text, path)
    for name in MANAGED:
        tmpl.unset(name)
    return tmpl.text


@dataclass(frozen=True)
class Change:
    """The outcome of :func:`apply` or :func:`revert`."""

    path: str
    changed: bool
    before: str
    after: str
    backup: str
    reason: str


def backup_path(conf: str) -> str:
    """Where the backup of ``conf`` lives (beside it: same filesystem, same permissions)."""
    return conf + BACKUP_SUFFIX


def read_text(conf: str) -> str:
    """The file as text; UsageError (exit 2) when missing, unreadable or not UTF-8."""
    try:
        return fsio.read_bytes(conf).decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{conf}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{conf}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{conf}: cannot read: {exc.strerror}") from None


def apply(conf: str, transform: Callable[[str], str], dry_run: bool = False,
          steps: Callable[[str], None] = lambda step: None) -> Change:
    """Change ``conf`` by ``transform`` (text -> text), safely.

    The current file must parse (else :class:`TemplateSyntaxError` with
    line:column and nothing is touched). A backup is made before the first
    change and kept until :func:`revert`. The new text is re-parsed, and
    must define the same non-CPU attributes as before, before it replaces the
    file. No change needed: nothing is written.
    """
    before = read_text(conf)
    parse(before, conf)
    after = transform(before)
    if after == before:
        return Change(conf, False, before, after, backup_path(conf), "already in place")
    if without_managed(after, conf) != without_managed(before, conf):
        raise CpuError(f"{conf}: the edit would change more than EMULATOR/CPU_MODEL; nothing written")
    if dry_run:
        return Change(conf, True, before, after, backup_path(conf),
                      "would be changed as below (dry run: nothing written)")
    backup = backup_path(conf)
    if not os.path.exists(backup):
        fsio.copy_atomic(conf, backup, fsio.FileMeta.of(conf), steps)
    fsio.atomic_write(conf, after.encode("utf-8"), fsio.FileMeta.of(conf), steps)
    return Change(conf, True, before, after, backup, "written")


def revert(conf: str, dry_run: bool = False,
           steps: Callable[[str], None] = lambda step: None) -> Change:
    """Undo every change one-hooks made to ``conf``.

    If nothing but EMULATOR/CPU_MODEL changed since the backup, the backup is
    put back byte for byte; otherwise only those two are restored to their
    backed-up values. The backup is removed afterwards. No backup: nothing
    was changed by us, nothing to undo.
    """
    backup = backup_path(conf)
    before = read_text(conf)
    if not os.path.exists(backup):
        return Change(conf, False, before, before, backup, "no backup: one-hooks never changed this file")
    original = read_text(backup)
    if _stripped(before, conf) == _stripped(original, backup):
        # The files differ only inside EMULATOR/CPU_MODEL: the backup loses nothing.
        after = original
        how, would = "restored byte for byte from the backup", "would restore byte for byte from the backup"
    else:
        after = restore_managed(before, original, conf)
        how = "other attributes changed since the backup: restored EMULATOR and CPU_MODEL only"
        would = "other attributes changed since the backup: would restore EMULATOR and CPU_MODEL only"
    if dry_run:
        return Change(conf, after != before, before, after, backup,
                      f"{would} and remove the backup {backup} (dry run: nothing written)")
    if after != before:
        parse(after, conf)
        fsio.atomic_write(conf, after.encode("utf-8"), fsio.FileMeta.of(conf), steps)
    fsio.remove(backup)
    return Change(conf, after != before, before, after, backup, how)


def enable(conf: str, mode: str, emulator: str = "", dry_run: bool = False,
           steps: Callable[[str], None] = lambda step: None) -> Change:
    """The switch on a driver config file: ``native`` (CPU_MODEL) or ``wrapper`` (EMULATOR=``emulator``).

    The one call the installer and ``one-hooks cpu enable`` use; undo with :func:`revert`.
    """
    if mode == "native":
        return apply(conf, lambda text: set_native(text, conf), dry_run, steps)
    if mode == "wrapper":
        if not emulator:
            raise UsageError("wrapper mode needs the wrapper's path on the nodes")
        return apply(conf, lambda text: set_emulator(text, emulator, conf), dry_run, steps)
    raise UsageError(f"mode must be native or wrapper, not {mode!r}")
