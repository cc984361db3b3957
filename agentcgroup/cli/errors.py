"""How the CLI reports errors: one line on stderr, naming the value, with a conventional exit code."""

from __future__ import annotations

import sys
from typing import NoReturn

#: exit codes of the runner itself (as env(1), docker run and timeout(1) use them)
USAGE = 2
RUNNER_FAILED = 125
CANNOT_EXECUTE = 126
NOT_FOUND = 127


def fail(message: str, code: int = USAGE) -> NoReturn:
    sys.stderr.write(f"agentcg: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)
