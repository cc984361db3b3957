"""How the CLI reports errors: one line on stderr, naming the value, with a conventional exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def bad_input() -> Iterator[None]:
    """Turn a bad value into its one-line error (exit 2); a command that is missing or not executable into
    127 or 126, as a shell says them."""
    from ..errors import InvalidValue

    try:
        yield
    except InvalidValue as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(exc.strerror or str(exc), NOT_FOUND)
    except PermissionError as exc:
        fail(exc.strerror or str(exc), CANNOT_EXECUTE)


def command_argv(command: Sequence[str], usage: str) -> list[str]:
    """The command after an optional ``--``; a missing one is a usage error showing ``usage``."""
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        fail(f"no command given (usage: {usage})")
    return argv


def check_command_line(session: str | None, root: str | None, argv: Sequence[str]) -> None:
    """The checks every command that starts a command in a session makes before it creates anything."""
    from ..cgroupfs import check_name
    from ..spawn import resolve

    if session is not None:
        check_name(session, "session")
    if root is not None:
        check_name(root, "root")
    resolve(list(argv))
