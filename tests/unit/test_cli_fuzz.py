"""Property-based fuzzing of every CLI option and file parser (issue 10, item 12).

For any value of any option, and any content of an input file, a command either succeeds or exits 2 (bad
input; 125 where the daemon cannot be reached) with exactly one line on stderr that starts ``agentcg: error:``
and never a traceback. Where a command would start real work (a controller, a replay, a benchmark), that step
is replaced by a marker: reaching it means every check passed, which is a success for this suite (the work
itself has its own kernel tests). Budget: a few hundred examples per test, no deadline (CI machines are slow).
"""

from __future__ import annotations

import json
import os
import string
import tempfile

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcgroup.cli.main import cli

FUZZ = settings(
    max_examples=int(os.environ.get("AGENTCG_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=bool(os.environ.get("CI")),
)

NASTY = [
    "",
    " ",
    "0",
    "-1",
    "-0",
    "1",
    "1e300",
    "1e-300",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "max",
    "4K",
    "0.5",
    "%",
    "50%",
    "1e300%",
    "-50%",
    "2200000",
    "720h",
    "1e9",
    "9" * 400,
    "0x10",
    "1_000",
    "１２",
    "..",
    "../x",
    "a/b",
    ".hidden",
    "\x00",
    "a\nb",
    "é",
    "x" * 300,
    "512M",
    "2GiB",
    "-5s",
    "5ms",
    "high",
    "normal",
    "low",
    "none",
    "auto",
    "v2",
    "[",
    "{}",
    "null",
    "true",
    "\\",
    "$(id)",
    "'",
    '"',
]
values = st.one_of(
    st.sampled_from(NASTY),
    st.text(alphabet=string.printable + "é…\u202e", max_size=24),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


class Reached(Exception):
    """The command passed every check and would start its work now."""


def _reached(*_a, **_k):  # type: ignore[no-untyped-def]
    raise Reached


def invoke(args: list[str], ok=(0, 2)) -> object:  # type: ignore[no-untyped-def]
    cwd = os.getcwd()
    # a fuzzed --out that is absolute (a "/") is made relative: the fuzz writes nowhere but its scratch dir (the
    # tests' own paths, under pytest's tmp_path, stay as they are)
    own = os.path.join(tempfile.gettempdir(), "pytest-of-")
    args = [
        f".{a}" if prev == "--out" and a.startswith("/") and not a.startswith(own) else a
        for prev, a in zip(["", *args], args, strict=False)
    ]
    with tempfile.TemporaryDirectory(prefix="agentcg-fuzz-") as scratch:
        # relative --out paths land in the scratch dir (two levels down: ".." and "../x" stay in it too), never in
        # the checkout or /tmp
        os.makedirs(os.path.join(scratch, "a", "b"))
        os.chdir(os.path.join(scratch, "a", "b"))
        try:
            result = CliRunner().invoke(cli, args, catch_exceptions=True)
        finally:
            os.chdir(cwd)
    exc = result.exception
    if isinstance(exc, Reached):
        return result
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(f"agentcg {args!r} raised {exc!r}") from exc
    assert result.exit_code in ok, (args, result.exit_code, result.stderr)
    if result.exit_code != 0:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("agentcg: error: "), (args, result.stderr)
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def no_work(monkeypatch):
    """Every command's work replaced by Reached (only the checks before it run)."""
    import agentcgroup.cli.bench_cmd as bench_cmd
    import agentcgroup.cli.daemon_cmd as daemon_cmd
    import agentcgroup.cli.record_cmd as record_cmd
    import agentcgroup.cli.replay_cmd as replay_cmd
    import agentcgroup.cli.run_call as run_call

    monkeypatch.setattr(run_call, "_embedded", _reached)
    monkeypatch.setattr(run_call, "_via_daemon", _reached)
    monkeypatch.setattr(record_cmd, "_record", _reached)
    monkeypatch.setattr(replay_cmd, "_run", _reached)
    monkeypatch.setattr(bench_cmd, "_bench", _reached)
    monkeypatch.setattr(daemon_cmd, "Controller", _reached)
    monkeypatch.delenv("AGENTCG_SOCKET", raising=False)
    monkeypatch.setenv("AGENTCG_SOCKET_CHECK", "1")


RUN_OPTS = ["--session", "--memory", "--memory-high", "--cpu", "--pids", "--timeout", "--root", "--backend"]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(RUN_OPTS), values), max_size=4))
def test_run_options(no_work, opts) -> None:
    invoke(["run", *[x for o in opts for x in o], "--", "true"], ok=(0, 2, 126, 127))


RECORD_OPTS = ["--interval", "--session", "--memory", "--cpu", "--pids", "--priority", "--root", "--out"]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(RECORD_OPTS), values), max_size=4))
def test_record_options(no_work, tmp_path, opts) -> None:
    invoke(["record", "--out", str(tmp_path / "r.jsonl"), *[x for o in opts for x in o], "--", "true"])


DAEMON_OPTS = [
    "--socket",
    "--budget",
    "--pressure-on",
    "--pressure-off",
    "--stall-grace",
    "--kill-after",
    "--urgent-level",
    "--urgent-grace",
    "--admission-wait",
    "--warm",
    "--warm-quiet",
    "--root",
    "--backend",
    "--policy",
    "--tenant-max-sessions",
    "--tenant-max-calls",
    "--tenant-max-connections",
    "--tenant-max-priority",
    "--metrics",
    "--events-max-size",
]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(DAEMON_OPTS), values), max_size=4))
def test_daemon_options(no_work, opts) -> None:
    invoke(["daemon", *[x for o in opts for x in o]])


@FUZZ
@given(
    verb=st.sampled_from(["open", "close"]),
    name=values,
    opts=st.lists(st.tuples(st.sampled_from(["--priority", "--memory", "--cpu-weight", "--agent-memory"]), values)),
)
def test_session_options(no_work, tmp_path, verb, name, opts) -> None:
    extra = [x for o in opts for x in o] if verb == "open" else []
    invoke(["session", verb, "--socket", str(tmp_path / "none.sock"), "--", name, *extra], ok=(2, 125))


REPLAY_OPTS = ["--time-scale", "--memory-scale", "--cpu-scale", "--max-duration", "--session", "--record", "--root"]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(REPLAY_OPTS), values), max_size=4))
def test_replay_options(no_work, small_trace, opts) -> None:
    invoke(["replay", small_trace, *[x for o in opts for x in o]])


BENCH_OPTS = ["--sessions", "--runs", "--arms", "--budget", "--duration", "--peak", "--call-procs", "--root", "--out"]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(BENCH_OPTS), values), max_size=4))
def test_bench_options(no_work, small_trace, opts) -> None:
    invoke(["bench", small_trace, *[x for o in opts for x in o]])


REPORT_OPTS = ["--min-duration", "--min-samples", "--burst-mb", "--host-gb", "--paper", "--timelines", "--out"]


@FUZZ
@given(opts=st.lists(st.tuples(st.sampled_from(REPORT_OPTS), values), max_size=3))
def test_report_options(small_trace, opts) -> None:
    invoke(["report", "--no-plots", "--json", small_trace, *[x for o in opts for x in o]])


# --- every option with every nasty value, deterministically (hypothesis above explores combinations) --------
SWEEP = [
    (["run"], RUN_OPTS, ["--", "true"], (0, 2, 126, 127)),
    (["record", "--out", "REC"], RECORD_OPTS, ["--", "true"], (0, 2)),
    (["daemon"], DAEMON_OPTS, [], (0, 2)),
    (
        ["session", "open", "--socket", "SOCK"],
        ["--priority", "--memory", "--cpu-weight", "--agent-memory"],
        ["s"],
        (2, 125),
    ),
    (["replay", "TRACE"], REPLAY_OPTS, [], (0, 2)),
    (["bench", "TRACE"], BENCH_OPTS, [], (0, 2)),
    (["report", "--no-plots", "--json", "TRACE"], REPORT_OPTS, [], (0, 2)),
    (["doctor", "--json"], ["--root"], [], (0, 2)),
    (["status", "--socket"], [""], [], (2, 125)),
    (["events", "--socket", "SOCK"], ["--session", "--last"], [], (2, 125)),
    (["top", "--once", "--socket", "SOCK"], ["--interval", "--sort", "--at"], [], (2, 125)),
    (["top", "--once", "--recording", "TRACE"], ["--at", "--sort"], [], (0, 2)),
]


@pytest.mark.parametrize("head,opts,tail,ok", SWEEP, ids=[" ".join(x[0][:2]) for x in SWEEP])
def test_every_option_with_every_nasty_value(no_work, tmp_path, small_trace, head, opts, tail, ok) -> None:
    subst = {"REC": str(tmp_path / "r.jsonl"), "SOCK": str(tmp_path / "none.sock"), "TRACE": small_trace}
    head = [subst.get(x, x) for x in head]
    for opt in opts:
        for value in NASTY:
            invoke([*head, *([opt, value] if opt else [value]), *tail], ok=ok)


# --- file parsers: whatever a trace or recording holds ------------------------------------------------------
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _mutated_recording(base: list[dict], draw_index: int, key: str, value: object) -> str:
    lines = [dict(x) for x in base]
    target = lines[draw_index % len(lines)]
    keys = sorted(target) or [key]
    target[keys[hash(key) % len(keys)] if key not in target else key] = value
    return "\n".join(json.dumps(x) for x in lines) + "\n"


@FUZZ
@given(index=st.integers(min_value=0, max_value=1000), key=st.text(max_size=8), value=json_values)
def test_report_replay_and_bench_read_any_recording(no_work, tmp_path, recording_lines, index, key, value) -> None:
    path = tmp_path / "fuzzed.jsonl"
    path.write_text(_mutated_recording(recording_lines, index, key, value))
    for args in (["report", "--no-plots", "--json", str(path)], ["replay", str(path)], ["bench", str(path)]):
        invoke(args)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_report_and_replay_read_any_bytes(no_work, tmp_path, data) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(data)
    for args in (["report", "--no-plots", "--json", str(path)], ["replay", str(path)]):
        invoke(args)


def test_deep_nesting_and_huge_numbers_in_a_recording(no_work, tmp_path, recording_lines) -> None:
    path = tmp_path / "deep.jsonl"
    lines = [json.dumps(x) for x in recording_lines]
    lines[1] = lines[1][:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    lines[2] = lines[2][:-1] + ', "big": ' + "9" * 5000 + "}"
    path.write_text("\n".join(lines) + "\n")
    for args in (["report", "--no-plots", "--json", str(path)], ["replay", str(path)]):
        invoke(args)


@FUZZ
@given(
    which=st.sampled_from(["resources.json", "tool_calls.json", "results.json"]),
    path=st.lists(st.one_of(st.text(max_size=6), st.integers(0, 40)), max_size=3),
    value=json_values,
)
def test_report_and_replay_read_any_paper_trace(no_work, tmp_path, which, path, value) -> None:
    import shutil

    task = tmp_path / "x__task-1"
    if task.exists():
        shutil.rmtree(task)
    shutil.copytree(PAPER_TASK, task)
    f = task / "attempt_1" / which
    doc = json.loads(f.read_text())
    f.write_text(json.dumps(_set_at(doc, path, value)))
    for args in (["report", "--no-plots", "--json", str(task)], ["replay", str(task / "attempt_1")]):
        invoke(args)


def _set_at(doc: object, path: list, value: object) -> object:
    """``doc`` with the element at ``path`` (keys or indexes, taken modulo what is there) set to ``value``."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(doc, dict) and doc:
        k = sorted(doc)[key % len(doc)] if isinstance(key, int) else key
        return {**doc, k: _set_at(doc.get(k), rest, value)}
    if isinstance(doc, list) and doc and isinstance(key, int):
        i = key % len(doc)
        return [*doc[:i], _set_at(doc[i], rest, value), *doc[i + 1 :]]
    return value


# --- fixtures ------------------------------------------------------------------------------------------------
DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "traces")
PAPER_TASK = os.path.join(DATA, "paper", "quirky__task-1")


@pytest.fixture(scope="module")
def recording_lines() -> list[dict]:
    """A small, valid agentcg recording (header, samples, calls), as parsed lines."""
    with open(os.path.join(DATA, "recording", "demo-session.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory, recording_lines) -> str:
    path = tmp_path_factory.mktemp("trace") / "t.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in recording_lines) + "\n")
    return str(path)
