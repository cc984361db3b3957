"""How the CLI reports errors: one line on stderr, naming the value, with a conventional exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any, NoReturn

#: exit codes of the runner itself (as env(1), docker run and timeout(1) use them)
USAGE = 2
RUNNER_FAILED = 125
CANNOT_EXECUTE = 126
NOT_FOUND = 127


def finite_range(min: float, max: float, min_open: bool = False):  # type: ignore[no-untyped-def]
    """A click float option within [min, max] (NaN and infinities refused: click's FloatRange lets NaN by)."""
    import math

    import click

    class FiniteRange(click.FloatRange):
        def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
            rv = super().convert(value, param, ctx)
            if not math.isfinite(rv):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
            return rv

    return FiniteRange(min=min, max=max, min_open=min_open)


def safe_path(**kwargs: Any) -> Any:
    """click.Path, but a name the OS cannot take (a NUL byte) is a usage error, not a traceback."""
    import click

    class SafePath(click.Path):
        def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
            if isinstance(value, str) and "\0" in value:
                self.fail(f"{value!r} contains a NUL byte.", param, ctx)
            return super().convert(value, param, ctx)

    return SafePath(**kwargs)


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
    elif argv and argv[0].startswith("-") and argv[0] != "-":
        fail(f"no such option: {argv[0]} (a command that starts with '-' goes after '--'; usage: {usage})")
    if not argv:
        fail(f"no command given (usage: {usage})")
    return argv


def check_command_line(session: str | None, root: str | None, argv: Sequence[str]) -> None:
    """The checks every command that starts a command in a session makes before it creates anything."""
    from ..cgroupfs import check_name
    from ..execpath import resolve

    if session is not None:
        check_name(session, "session")
    if root is not None:
        check_name(root, "root")
    resolve(list(argv))
