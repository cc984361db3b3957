"""A process per tool call pays for what ``agentcg run`` imports: only what the verb needs.

Each case runs the real ``agentcg`` in a fresh interpreter and, at exit, lists the modules it had imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# what no `agentcg run` needs, embedded or through the daemon
HEAVY = (
    "rich",
    "agentcgroup.record",
    "agentcgroup.replay",
    "agentcgroup.report",
    "agentcgroup.bench",
    "agentcgroup.predict",
    "agentcgroup.traces",
    "agentcgroup.integrations",
    "agentcgroup.systemd",
    "agentcgroup.daemon.server",
    "agentcgroup.daemon.ops",
    "agentcgroup.cli.daemon_cmd",
    "agentcgroup.cli.record_cmd",
    "agentcgroup.cli.report_cmd",
    "jeepney",
    "sqlite3",
    "click",  # the plain forms of `run` are parsed without it (fast_run.py)
)
# what the daemon's thin client does not need either: the controller and the spawner are the daemon's
CONTROLLER = (
    "agentcgroup.session",
    "agentcgroup.controller.core",
    "agentcgroup.controller.dispatch",
    "agentcgroup.controller.loop",
    "agentcgroup.backends",
    "agentcgroup.toolcall",
    "agentcgroup.spawn",
    "agentcgroup.warm",
    "subprocess",
    "msgspec",  # the daemon's decoder: the client encodes with the standard library (daemon/wire.py)
    "agentcgroup.daemon.protocol",
)

# what neither per-call path needs: dataclasses (with inspect) cost more than the rest of their imports, logging
# is imported when a line could come out (INFO lines of an unconfigured logging never do)
PER_CALL = ("dataclasses", "inspect", "logging")
# ... and the thin client's modules do without typing (TYPE_CHECKING blocks)
THIN = ("typing",)

_DUMP = (
    "import atexit, json, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from agentcgroup.cli.main import main\n"
    "sys.argv[0] = 'agentcg'\n"
    "main()\n"
)


def _modules(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess]:
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP, str(out), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.exists(), proc.stderr
    return set(json.loads(out.read_text())), proc


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")}
    env.update(extra)
    return env


def test_embedded_run_imports_no_heavy_module(tmp_path: Path) -> None:
    modules, proc = _modules(tmp_path, ["run", "--backend", "none", "--", "/bin/true"], _env())
    assert proc.returncode == 0, proc.stderr
    assert "agentcgroup.controller.core" in modules  # the check sees what it should: the embedded path ran
    assert _loaded(modules, HEAVY + PER_CALL) == []


def test_daemon_client_run_imports_only_the_client(tmp_path: Path) -> None:
    # no daemon listens there: the thin client gets as far as connecting, then says so
    env = _env(AGENTCG_SOCKET=str(tmp_path / "nobody.sock"))
    modules, proc = _modules(tmp_path, ["run", "--", "/bin/true"], env)
    assert proc.returncode != 0 and "daemon" in proc.stderr, proc.stderr
    assert "agentcgroup.daemon.client" in modules
    assert _loaded(modules, HEAVY + CONTROLLER + PER_CALL + THIN) == []


@pytest.mark.parametrize("args", [["run", "--memory", "lots", "--", "/bin/true"], ["run", "--", "/no/such/cmd"]])
def test_bad_run_line_imports_no_controller(tmp_path: Path, args: list[str]) -> None:
    modules, proc = _modules(tmp_path, args, _env())
    assert proc.returncode in (2, 127), proc.stderr
    assert _loaded(modules, HEAVY + CONTROLLER) == []


def test_help_still_lists_every_command(tmp_path: Path) -> None:
    from agentcgroup.cli.main import COMMANDS

    _, proc = _modules(tmp_path, ["--help"], _env())
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)
