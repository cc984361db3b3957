"""The daemon's control threads' nice value: parsed with errors that name it; a thread raised by its tid, and
the threads that start tools put back at the process's own value (a tool never inherits a raised one)."""

from __future__ import annotations

import os
import threading

import pytest
from click.testing import CliRunner

from agentcgroup import threadnice
from agentcgroup.cli.main import cli
from agentcgroup.errors import InvalidValue


def test_parse_names_the_bad_value() -> None:
    assert threadnice.parse("-5") == -5 and threadnice.parse(19) == 19
    with pytest.raises(InvalidValue, match=r"--control-nice: 'fast' is not an integer"):
        threadnice.parse("fast")
    with pytest.raises(InvalidValue, match=r"--control-nice: -21 is outside the nice range -20..19"):
        threadnice.parse("-21")
    with pytest.raises(InvalidValue, match="20 is outside"):
        threadnice.parse("20")


def test_the_daemon_refuses_a_bad_control_nice_with_one_line(tmp_path) -> None:
    for bad in ("-40", "x"):
        r = CliRunner().invoke(cli, ["daemon", "--control-nice", bad, "--socket", str(tmp_path / "s")])
        assert r.exit_code == 2 and r.stderr.count("\n") == 1 and bad in r.stderr, r.stderr
    r = CliRunner().invoke(cli, ["daemon", "--socket", str(tmp_path / "s")], env={"AGENTCG_CONTROL_NICE": "99"})
    assert r.exit_code == 2 and "99" in r.stderr, r.stderr


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_raised_thread_and_a_thread_put_back_at_base(monkeypatch) -> None:
    """A thread made by a raised thread inherits its value (Linux: per thread); at_base puts it back. Raised here
    means a higher nice value (a lower one needs root): the mechanism is the same."""
    monkeypatch.setattr(threadnice, "_base", None)
    base = _nice()
    seen: dict[str, int] = {}
    go = threading.Event()

    def controller() -> None:
        go.wait()
        seen["raised"] = _nice()

        def child() -> None:
            seen["inherited"] = _nice()
            threadnice.at_base()
            seen["child"] = _nice()

        t = threading.Thread(target=child)
        t.start()
        t.join()

    t = threading.Thread(target=controller)
    t.start()
    assert t.native_id is not None
    threadnice.raise_thread(t.native_id, base + 3)  # from another thread, by its tid
    go.set()
    t.join()
    assert seen == {"raised": base + 3, "inherited": base + 3, "child": base}
    assert _nice() == base  # the caller's own value untouched


def test_at_base_does_nothing_when_nothing_was_raised(monkeypatch) -> None:
    monkeypatch.setattr(threadnice, "_base", None)
    seen = []

    def t() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _nice() + 1)
        threadnice.at_base()
        seen.append(_nice())

    th = threading.Thread(target=t)
    before = _nice()
    th.start()
    th.join()
    assert seen == [before + 1]


class _Ctl:
    class loop:  # the controller's loop, as far as the daemon's command looks at it
        thread = threading.current_thread()


def test_the_default_raises_only_a_root_daemon_and_a_refusal_is_logged(monkeypatch, caplog) -> None:
    from agentcgroup.cli import daemon_cmd

    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(threadnice, "raise_thread", lambda tid, nice: raised.append((tid, nice)))
    monkeypatch.setattr(daemon_cmd.os, "geteuid", lambda: 1000)
    daemon_cmd._raise_control_threads(_Ctl(), None)  # type: ignore[arg-type]
    assert raised == []  # an unprivileged daemon could not lower it: left as it is
    monkeypatch.setattr(daemon_cmd.os, "geteuid", lambda: 0)
    daemon_cmd._raise_control_threads(_Ctl(), None)  # type: ignore[arg-type]
    assert [n for _, n in raised] == [daemon_cmd.CONTROL_NICE] * 2
    raised.clear()
    daemon_cmd._raise_control_threads(_Ctl(), os.getpriority(os.PRIO_PROCESS, 0))  # type: ignore[arg-type]
    assert raised == []  # its own value: off

    def refuse(tid: int, nice: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(threadnice, "raise_thread", refuse)
    daemon_cmd._raise_control_threads(_Ctl(), -3)  # type: ignore[arg-type]
    assert "event=control-nice-refused nice=-3" in caplog.text
