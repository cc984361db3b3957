"""``agentcg report`` end to end on the project's synthetic traces (click's CliRunner, temp output dirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcgroup.cli.report_cmd import report
from agentcgroup.report import plots

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"


def _runner() -> CliRunner:
    """stdout and stderr apart: the default from click 8.2, an option before."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2 has it, 8.2 does not
    except TypeError:
        return CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = _runner().invoke(report, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_json_has_the_headline_keys() -> None:
    code, out, _ = _run(str(DATA), "--json", "--no-plots")
    assert code == 0
    r = json.loads(out)
    for key in (
        "tasks",
        "os_share",
        "tool_share_mean",
        "bash_mean_s",
        "peak_to_avg_max",
        "burst_in_tool_share",
        "tasks_found",
        "tasks_dropped",
        "drop_reasons",
        "dropped",
        "quirks",
        "paper",
    ):
        assert key in r, key
    assert (r["tasks"], r["tasks_found"], r["tasks_dropped"]) == (2, 5, 3)
    assert r["burst_in_tool_share"] == pytest.approx(2 / 3)
    assert r["thresholds"] == {"min_duration_s": 60.0, "min_samples": 10}
    assert r["sources"] == [str(DATA)]


def test_thresholds_burst_and_host_options() -> None:
    code, out, _ = _run(
        str(DATA / "recording"),
        "--json",
        "--min-duration",
        "0",
        "--min-samples",
        "2",
        "--burst-mb",
        "500",
        "--host-gb",
        "6",
    )
    assert code == 0
    r = json.loads(out)
    assert r["tasks"] == 1 and r["valid"] == ["demo-session"]
    # samples above 500 MB: 600 MB twice, at 0.9 s (inside c1) and 1.0 s (after c1 ended at 0.95 s)
    assert (r["bursts"]["high_samples"], r["bursts"]["high_samples_in_tool"]) == (2, 1)
    assert r["sessions_by_peak"] == 10  # 6 GB / 600 MB
    assert r["retries"]["loops"] == 1  # failed pytest, then a similar one
    assert r["paper"]["rows"] == []  # our recording: nothing of the paper's to compare with


def test_out_dir_gets_markdown_json_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    code, out, err = _run(str(DATA), "--out", str(tmp_path), "--timelines", "2")
    assert code == 0 and out == ""
    assert "2 of 5 tasks valid" in err
    md = (tmp_path / "report.md").read_text()
    assert "kept **2** valid ones" in md
    assert "- `short__task-3`: too few samples (5 < 10)" in md
    assert "## Differences from the paper" in md
    assert "**High-memory samples (> 300.0 MB) inside tool calls: 66.7 %**" in md
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["plots"] and all((tmp_path / name).stat().st_size > 1000 for name in written["plots"])
    assert sum(name.startswith("timeline_") for name in written["plots"]) == 2
    assert f"![{written['plots'][0]}]({written['plots'][0]})" in md


def test_without_matplotlib_the_report_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "_pyplot", lambda: None)
    code, _, err = _run(str(DATA), "--out", str(tmp_path))
    assert code == 0
    assert "matplotlib is not installed" in err
    assert "matplotlib is not installed, so this report has no plots" in (tmp_path / "report.md").read_text()
    assert not list(tmp_path.glob("*.png"))


def test_markdown_on_stdout_without_out_or_json() -> None:
    code, out, _ = _run(str(DATA / "paper"))
    assert code == 0
    assert out.startswith("# Agent session characterization")
    assert "| sampled too briefly |" not in out and "| too few samples | 1 |" in out


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    result = _runner().invoke(report, [str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = _runner().invoke(report, [str(tmp_path)])  # a directory without traces is bad input too
    assert result.exit_code == 2 and "no traces found under" in result.stderr
