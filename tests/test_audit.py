"""The audit trail's set-up: a machine without the log directory falls back to stderr quietly."""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from one_hooks import audit
from one_hooks.config import LogSection


def run_with_log(tmp_path: Path, log_file: str) -> subprocess.CompletedProcess:
    """A process that sets up the log as every command does, says one decision and logs one line."""
    conf = tmp_path / "one-hooks.conf"
    conf.write_text(f"[log]\nfile = {log_file}\n")
    code = ("import sys; from one_hooks import audit; from one_hooks.audit import Reporter\n"
            "from one_hooks.config import load\n"
            f"cfg = load({str(conf)!r})\n"
            "out = Reporter(logger=audit.setup(cfg.log, 'one-hooks-test'))\n"
            "out.line('a decision'); out.logger.info('a line only the log gets')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_no_log_directory_means_stderr_quietly_and_no_line_twice(tmp_path: Path) -> None:
    result = run_with_log(tmp_path, str(tmp_path / "no-such-dir" / "one-hooks.log"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a decision\n"
    assert "cannot open log file" not in result.stderr and "warning" not in result.stderr.lower()
    assert "a decision" not in result.stderr, "a line already printed is not printed again"
    assert result.stderr.count("a line only the log gets") == 1


def test_an_unwritable_log_is_still_warned_about(tmp_path: Path) -> None:
    """A log directory that exists but refuses the file is an installation problem: one warning says so."""
    (tmp_path / "log-is-a-dir").mkdir()
    result = run_with_log(tmp_path, str(tmp_path / "log-is-a-dir"))
    assert "cannot open log file" in result.stderr
    assert result.stdout == "a decision\n"


def test_log_file_gets_every_line(tmp_path: Path) -> None:
    log = tmp_path / "one-hooks.log"
    logger = audit.setup(LogSection(file=str(log)), "one-hooks-test")
    try:
        audit.Reporter(logger=logger, echo=False).line("decided")
        assert "one-hooks-test" in log.read_text() and "decided" in log.read_text()
    finally:
        logger.handlers.clear()


class _SlowStream:
    """A stream that yields to other threads inside every write, as a pipe under load may."""

    def __init__(self) -> None:
        self.parts: list = []

    def write(self, text: str) -> int:
        time.sleep(0.0005)
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_from_several_threads_come_out_whole() -> None:
    # The engine's workers report from threads (hosts recovered side by side): a line spliced
    # with another host's line is a line an operator cannot read (and a test once missed one).
    stream = _SlowStream()
    reporter = audit.Reporter(out=stream, logger=logging.getLogger("test-audit-threads"))
    texts = {f"host node-{h}: tier {t}: resuming 1 VM(s)" for h in range(6) for t in range(40)}

    def report(host: int) -> None:
        for t in range(40):
            reporter.line(f"host node-{host}: tier {t}: resuming 1 VM(s)")

    threads = [threading.Thread(target=report, args=(h,)) for h in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    printed = "".join(stream.parts).split("\n")
    assert printed[-1] == ""
    assert sorted(printed[:-1]) == sorted(texts)
