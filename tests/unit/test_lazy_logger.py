"""lazy_logger: logging is imported only when a line could come out; a configured logging gets every line."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from agentcgroup._lazy import lazy_logger


def test_lines_reach_a_configured_logging(caplog: pytest.LogCaptureFixture) -> None:
    log = lazy_logger("agentcgroup.test-lazy")
    with caplog.at_level(logging.DEBUG, logger="agentcgroup.test-lazy"):
        log.debug("d %d", 1)
        log.info("i %s", "x")
        log.warning("w")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "d 1"),
        ("INFO", "i x"),
        ("WARNING", "w"),
    ]
    assert log.isEnabledFor(logging.WARNING)


def test_info_without_logging_imports_nothing_warning_does() -> None:
    code = (
        "import sys\n"
        "from agentcgroup._lazy import lazy_logger\n"
        "log = lazy_logger('agentcgroup')\n"
        "log.info('dropped %s', 1); log.debug('dropped')\n"
        "print('logging' in sys.modules)\n"
        "log.warning('shown %s', 2)\n"
        "print('logging' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]
    assert proc.stderr.strip() == "shown 2"  # logging's last resort handler, as with a plain getLogger
