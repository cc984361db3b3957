"""The ``agentcg`` click group: sub-commands imported on first use, errors in one line."""

from __future__ import annotations

import importlib
import sys

import click

from .main import COMMANDS, _logging


class _LazyGroup(click.Group):
    """Sub-commands imported on first use (click's documented lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attr = COMMANDS[cmd_name]
        try:
            cmd = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        except ImportError:  # pragma: no cover - an optional module missing from a partial install
            if cmd_name == "report":
                return None
            raise
        assert isinstance(cmd, click.Command)
        self.add_command(cmd, cmd_name)
        return cmd


class _OneLineErrors(_LazyGroup):
    """Usage errors as every other error of ours: one line naming the value, exit 2 (not click's usage block)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[no-untyped-def]
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            sys.stderr.write(f"agentcg: error: {_first_lower(exc.format_message())}{where}\n")
            raise SystemExit(exc.exit_code) from None
        except click.ClickException as exc:
            sys.stderr.write(f"agentcg: error: {_first_lower(exc.format_message())}\n")
            raise SystemExit(exc.exit_code) from None
        except click.Abort:
            sys.stderr.write("agentcg: aborted\n")
            raise SystemExit(130) from None
        if not standalone_mode:
            return rv
        raise SystemExit(rv if isinstance(rv, int) else 0)


def _first_lower(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].lower() + text[1:]


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentcgroup")
@click.option("-v", "--verbose", count=True, help="Log decisions (-v) or everything (-vv) to stderr.")
def cli(verbose: int) -> None:
    """agentcgroup: a cgroup for every tool call of an AI agent."""
    _logging(verbose)
