"""filediff: the one renderer of a planned file change, checked against what patch(1) makes of it."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from one_hooks.filediff import unified


def test_equal_contents_give_no_lines() -> None:
    assert unified("/etc/x", b"a\n", "a\n") == []
    assert unified("/etc/x", None, None) == []


def test_created_and_removed_files() -> None:
    assert unified("/etc/x", None, "a\nb\n") == ["--- /dev/null", "+++ /etc/x", "@@ -0,0 +1,2 @@", "+a", "+b"]
    assert unified("/etc/x", b"a\n", None) == ["--- /etc/x", "+++ /dev/null", "@@ -1 +0,0 @@", "-a"]


def test_a_missing_last_newline_is_marked() -> None:
    lines = unified("/etc/x", "a\nb", "a\nb\n")
    assert lines[-3:] == ["-b", "\\ No newline at end of file", "+b"]


def test_binary_content_is_summarised() -> None:
    assert unified("/bin/x", b"\xff\x00", b"ok\n") == ["binary file /bin/x would change (2 bytes -> 3 bytes)"]


def test_the_diff_applies_with_patch(tmp_path: Path) -> None:
    if not shutil.which("patch"):
        pytest.skip("patch(1) is not installed")
    before = "".join(f"line {n}\n" for n in range(40))
    after = before.replace("line 3\n", "line three\n").replace("line 30\n", "") + "tail"
    target = tmp_path / "f"
    target.write_text(before)
    diff = "\n".join(unified(str(target), before, after)) + "\n"
    subprocess.run(["patch", "-s", str(target)], input=diff, text=True, check=True, timeout=30)
    assert target.read_text() == after
