"""A tool call's request, as one value: from the API (``Session.start``, ``Controller.submit``, the daemon's
``run``) through admission to the leaf (:class:`~agentcgroup.toolcall.ToolCall`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._record import Frozen
from ..cgroupfs import check_name
from ..errors import InvalidValue
from ..limits import Limits
from .intent import Intent, default_timeout, size_limits

if TYPE_CHECKING:
    from ..toolcall import Launcher


class CallSpec(Frozen):
    """What to run and how.

    argv, env, cwd      the command (env None: this process's environment)
    limits, intent      what the caller set and declared; :meth:`resolved` completes limits from the intent
    timeout             seconds (None: none, or 10x a declared duration)
    call_id             a name for the call (default: a fresh one)
    run_as              (uid, gid) to drop to after placement
    stdin/out/err       None (inherit), an fd, a file, or ``spawn.PIPE``; ``capture_output`` pipes both
                        (stderr ``spawn.STDOUT``: one pipe for both, their order kept, all in outcome.stdout)
    relay_stdout        an fd the command's stdout is copied to as it comes (the outcome can then follow it)
    keep_background     processes the command leaves running are not killed when it exits
    new_session         the command starts a new session (setsid): no controlling terminal
    capture_limit       captured output kept per stream at most (None: all); the rest is read, dropped, noted
    launcher, parent    for calls that run elsewhere than a host process of ours (``docker exec``): how to
                        start it, and the cgroup its leaf goes beneath instead of ``<session>/tools``
    """

    FIELDS = (
        "argv",
        "limits",
        "intent",
        "timeout",
        "call_id",
        "run_as",
        "env",
        "cwd",
        "stdin",
        "stdout",
        "stderr",
        "capture_output",
        "relay_stdout",
        "keep_background",
        "new_session",
        "capture_limit",
        "launcher",
        "parent",
    )
    argv: tuple[str, ...]
    limits: Limits
    intent: Intent
    timeout: float | None
    call_id: str | None
    run_as: tuple[int, int] | None
    env: Mapping[str, str] | None
    cwd: str | None
    stdin: Any
    stdout: Any
    stderr: Any
    capture_output: bool
    relay_stdout: int | None
    keep_background: bool
    new_session: bool
    capture_limit: int | None
    launcher: Launcher | None
    parent: tuple[str, ...] | None

    def __init__(
        self,
        argv: tuple[str, ...],
        limits: Limits | None = None,
        intent: Intent | None = None,
        timeout: float | None = None,
        call_id: str | None = None,
        run_as: tuple[int, int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        capture_output: bool = False,
        relay_stdout: int | None = None,
        keep_background: bool = False,
        new_session: bool = False,
        capture_limit: int | None = None,
        launcher: Launcher | None = None,
        parent: tuple[str, ...] | None = None,
    ) -> None:
        self._set("argv", argv)
        self._set("limits", Limits() if limits is None else limits)
        self._set("intent", Intent() if intent is None else intent)
        self._set("timeout", timeout)
        self._set("call_id", call_id)
        self._set("run_as", run_as)
        self._set("env", env)
        self._set("cwd", cwd)
        self._set("stdin", stdin)
        self._set("stdout", stdout)
        self._set("stderr", stderr)
        self._set("capture_output", capture_output)
        self._set("relay_stdout", relay_stdout)
        self._set("keep_background", keep_background)
        self._set("new_session", new_session)
        self._set("capture_limit", capture_limit)
        self._set("launcher", launcher)
        self._set("parent", parent)
        self._check()

    def _check(self) -> None:
        if not self.argv:
            raise InvalidValue("command", list(self.argv), "must not be empty")
        t = self.timeout
        if t is not None and (
            isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0)
        ):
            raise InvalidValue("timeout", t, "must be a positive number of seconds")
        if self.call_id is not None:
            check_name(self.call_id, "call id")

    @classmethod
    def of(cls, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> CallSpec:
        """From the keywords of ``Controller.submit`` (``None`` limits/intent: none)."""
        if kw.get("limits") is None:
            kw["limits"] = Limits()
        if kw.get("intent") is None:
            kw["intent"] = Intent()
        return cls(tuple(os.fspath(a) for a in argv), **kw)

    def resolved(self) -> CallSpec:
        """Limits completed from the intent (soft limit 1.25x a declared peak, CPU weight) and the timeout
        defaulted from a declared duration."""
        return self.replace(
            limits=size_limits(self.intent, self.limits), timeout=default_timeout(self.intent, self.timeout)
        )
