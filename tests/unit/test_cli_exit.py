"""``agentcg run`` ends its process without the interpreter's teardown (cli/main.py ``_exit_now``): what the
usual exit gives must stay — the exit status, every byte of output, the exit hooks (atexit) — and a thread
still running keeps the usual exit (the interpreter waits for it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcgroup.cli import main as cli_main

_WRAP = (
    "import atexit, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('hooks ran'))\n"
    "from agentcgroup.cli.main import main\n"
    "sys.argv[0] = 'agentcg'\n"
    "main()\n"
)


def _agentcg(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    mark = tmp_path / "atexit"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")}
    proc = subprocess.run(
        [sys.executable, "-c", _WRAP, str(mark), "run", "--backend", "none", *args],
        env=env,
        capture_output=True,
        timeout=120,
    )
    return proc, mark


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_status_and_hooks(tmp_path: Path, code: int) -> None:
    proc, mark = _agentcg(tmp_path, "--", "sh", "-c", f"exit {code}")
    assert proc.returncode == code, proc.stderr
    assert mark.read_text() == "hooks ran"


def test_all_output_written(tmp_path: Path) -> None:
    """With --json our own stdout is written by Python (buffered): all of it must be out before the exit."""
    proc, mark = _agentcg(tmp_path, "--json", "--", "sh", "-c", "seq 1 20000")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[:20000] == [str(i) for i in range(1, 20001)]
    assert lines[-1].startswith("{") and '"returncode":0' in lines[-1]
    assert mark.read_text() == "hooks ran"


def test_other_thread_keeps_the_usual_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread still running: no early exit (the interpreter would wait for it; os._exit would not)."""
    import threading

    called: list[int] = []
    monkeypatch.setattr(os, "_exit", lambda code: called.append(code))
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        cli_main._exit_now(SystemExit(0))
    finally:
        stop.set()
        t.join()
    assert called == []
    cli_main._exit_now(SystemExit("a message, not a status"))  # the usual exit prints it
    assert called == []
