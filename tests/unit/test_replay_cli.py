"""``agentcg replay`` and ``agentcg record`` refuse bad input with one line naming the value, exit 2, and
create nothing (these cases fail before any cgroup or file is made)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcgroup.cli.main import cli

DATA = Path(__file__).resolve().parents[1] / "data"
SYNTHETIC = DATA / "replay" / "synthetic-agent.jsonl"


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2 has it, 8.2 does not
    except TypeError:
        return CliRunner()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["/no/such/trace"], "'/no/such/trace'"),
        ([str(SYNTHETIC), "--time-scale", "0"], "time scale '0'"),
        ([str(SYNTHETIC), "--time-scale", "-3"], "time scale '-3'"),
        ([str(SYNTHETIC), "--time-scale", "fast"], "time scale 'fast'"),
        ([str(SYNTHETIC), "--memory-scale", "0"], "memory scale '0'"),
        ([str(SYNTHETIC), "--memory-scale", "nan"], "memory scale 'nan'"),
        ([str(SYNTHETIC), "--memory-scale", "100000"], "memory scale '100000'"),
        ([str(SYNTHETIC), "--cpu-scale", "0"], "CPU scale '0'"),
        ([str(SYNTHETIC), "--max-duration", "-1"], "max duration '-1'"),
        ([str(SYNTHETIC), "--session", "../x"], "'../x'"),
        ([str(SYNTHETIC), "--record", "/no/such/dir/r.jsonl"], "'/no/such/dir/r.jsonl'"),
        ([str(DATA / "kernel" / "psi-memory.txt")], "psi-memory.txt"),  # not a trace
        ([str(DATA / "kernel")], "holds no trace"),
        ([str(DATA / "traces" / "paper")], "name one of them"),
    ],
)
def test_replay_bad_input(args: list[str], named: str) -> None:
    r = _runner().invoke(cli, ["replay", *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("agentcg: error: ") and r.stderr.count("\n") == 1
    assert named in r.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--interval", "0", "--", "true"], "'0'"),
        (["--interval", "soon", "--", "true"], "'soon'"),
        (["--memory", "-5M", "--", "true"], "'-5M'"),
        (["--session", "a/b", "--", "true"], "'a/b'"),
        (["--priority", "urgent", "--", "true"], "'urgent'"),
        (["--root", "..", "--", "true"], "'..'"),
    ],
)
def test_record_bad_input(tmp_path: Path, args: list[str], named: str) -> None:
    out = tmp_path / "r.jsonl"
    r = _runner().invoke(cli, ["record", "--out", str(out), *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("agentcg: error: ") and r.stderr.count("\n") == 1
    assert named in r.stderr
    assert not out.exists()


def test_record_needs_a_writable_place_and_a_command(tmp_path: Path) -> None:
    r = _runner().invoke(cli, ["record", "--out", str(tmp_path), "--", "true"])
    assert r.exit_code == 2 and "is a directory" in r.stderr
    r = _runner().invoke(cli, ["record", "--out", str(tmp_path / "r.jsonl"), "--", "no-such-command-xyz"])
    assert r.exit_code == 127 and not (tmp_path / "r.jsonl").exists()
