"""fast_run.parse takes a command line exactly as click would, or leaves it to click."""

from __future__ import annotations

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcgroup.cli.fast_run import parse
from agentcgroup.cli.run_cmd import run


def _click(args: list[str]) -> dict[str, object]:
    ctx = run.make_context("run", list(args))
    params = dict(ctx.params)
    params["command"] = list(params["command"])
    return params


def _same(args: list[str]) -> None:
    fast = parse(args)
    if fast is None:
        return
    try:
        slow = _click(args)
    except click.ClickException as exc:  # pragma: no cover - a disagreement is the failure
        raise AssertionError(f"fast_run took {args!r}, click refused it: {exc}") from exc
    fast = dict(fast, command=list(fast["command"]))
    assert fast == slow, args


@pytest.mark.parametrize(
    "args",
    [
        ["--", "/bin/true"],
        ["/bin/true", "-x"],
        ["--memory", "256M", "--timeout=5s", "--json", "--", "python3", "-c", "pass"],
        ["--session", "s1", "--keep-background", "--backend", "none", "--", "sh", "-c", "sleep 1 &"],
        ["--cpu", "50%", "--pids=10", "--root", "agentcg-x", "--socket", "/tmp/s", "ls", "--", "-l"],
        ["--memory=", "--", "true"],
    ],
)
def test_plain_forms_parse_as_click_does(args: list[str]) -> None:
    assert parse(args) is not None
    _same(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["--memory"],
        ["--memory", "--", "true"],
        ["--memory", "1G", "--memory", "2G", "--", "true"],
        ["--json=1", "--", "true"],
        ["--backend", "v3", "--", "true"],
        ["--unknown", "--", "true"],
        ["--"],
        [],
        ["-v", "--", "true"],
    ],
)
def test_anything_else_goes_to_click(args: list[str]) -> None:
    assert parse(args) is None


WORDS = st.sampled_from(
    ["--", "--session", "--memory", "--memory-high", "--cpu", "--pids", "--timeout", "--root", "--backend",
     "--socket", "--json", "--keep-background", "--help", "-x", "-", "true", "1G", "none", "a=b", "--memory=2G",
     "--json=", ""]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, max_size=8))
def test_any_line_fast_run_takes_click_takes_alike(args: list[str]) -> None:
    _same(args)
