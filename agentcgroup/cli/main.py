"""The ``agentcg`` command: one group, one file per sub-command."""

from __future__ import annotations

import logging
import os
import sys

import click

from .bench_cmd import bench
from .capacity_cmd import capacity
from .daemon_cmd import daemon
from .doctor_cmd import doctor
from .events_cmd import events
from .predict_cmd import predict
from .record_cmd import record
from .replay_cmd import replay_cmd
from .run_cmd import run
from .session_cmd import session
from .shim_cmd import hook, shim
from .status_cmd import status
from .top_cmd import top
from .unit_cmd import unit


class _OneLineErrors(click.Group):
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
    level = os.environ.get("AGENTCG_LOG")
    if verbose or level:
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.DEBUG if verbose > 1 else (level or logging.INFO),
            format="agentcg: %(message)s",
        )


cli.add_command(run)
cli.add_command(doctor)
cli.add_command(daemon)
cli.add_command(session)
cli.add_command(status)
cli.add_command(shim)
cli.add_command(hook)
cli.add_command(record)
cli.add_command(replay_cmd)
cli.add_command(bench)
cli.add_command(unit)  # systemd hosts: agentcg.service
cli.add_command(predict)
cli.add_command(capacity)
cli.add_command(events)
cli.add_command(top)

try:  # optional sub-commands, each in its own module
    from .report_cmd import report

    cli.add_command(report)
except ImportError:  # pragma: no cover - report module missing from a partial install
    pass


def main() -> None:
    cli(prog_name="agentcg")
