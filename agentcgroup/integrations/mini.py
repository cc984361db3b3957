"""mini-swe-agent environment: every command the agent issues is a tool call of one agentcgroup session.

    mini --environment-class agentcgroup.integrations.mini.AgentcgroupEnvironment \\
         -c mini.yaml -c environment.memory=2G -c environment.timeout=600

``execute`` keeps mini's ``LocalEnvironment`` contract, so mini's agent loop and trajectories cannot tell the
difference except by what is added:

* the command runs as ``/bin/sh -c COMMAND`` (mini's ``shell=True``), in ``cwd`` with ``os.environ | env``;
* ``output`` is stdout and stderr in one pipe, in the order they were written, decoded as mini decodes it
  (UTF-8, errors replaced, universal newlines);
* a timeout gives ``returncode`` -1, ``exception_info`` "An error occurred while executing the command:
  Command '...' timed out after N seconds", ``extra.exception_type`` "TimeoutExpired" and the output so far;
* a command that cannot start (a missing ``cwd``) gives ``returncode`` -1 with the error in ``exception_info``
  and ``extra.exception_type`` (never a raise: a raise would end mini's run);
* ``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`` on the first line ends the run as mini's does.

Added: when a limit acted, one line starting ``[agentcgroup]`` after the output (what happened, the figures,
what to try), and ``extra.agentcgroup`` (the call's whole outcome). A command killed by a memory limit returns
137 (128 + SIGKILL, what a shell reports), as the model would see from a shell.

Processes a command leaves running (``server &``) are stopped when the call ends, so one call's leftovers
cannot eat the next one's memory; ``keep_background: true`` keeps them running, in the call's cgroup, under its
limits, until the session closes (mini's own environment leaves them running).

Through the daemon when ``socket`` (or ``$AGENTCG_SOCKET``) is set, else an embedded controller in the agent's
process. The agent process stays where it was started, outside the session, so no tool call's limit or OOM can
reach it.
"""

from __future__ import annotations

import atexit
import os
import subprocess
from typing import Any

from minisweagent.environments.local import LocalEnvironment, LocalEnvironmentConfig

from ..limits import Limits
from ..outcome import Outcome
from ..session import Session
from ..spawn import DEVNULL, STDOUT


class AgentcgroupEnvironmentConfig(LocalEnvironmentConfig):
    session: str = ""  # default: mini-<pid>
    priority: str = "normal"
    session_memory: str | None = None  # the session's budget
    memory: str | None = None  # each call's hard limit
    memory_high: str | None = None  # each call's soft limit
    cpu: str | None = None  # each call's CPU quota, e.g. "200%"
    pids: int | None = None
    socket: str | None = None
    feedback_prefix: str = "[agentcgroup] "
    keep_background: bool = False  # keep what a command leaves running (until the session closes)
    shell: str = "/bin/sh"  # what mini's subprocess shell=True runs


def _error_result(exc: BaseException, output: str = "") -> dict[str, Any]:
    """mini's shape for a command that raised (``LocalEnvironment.execute``'s ``except`` branch)."""
    if isinstance(exc, OSError) and type(exc).__module__ != "builtins" and exc.errno:
        # our SpawnError as the builtin class its errno has (FileNotFoundError), its message once
        exc = OSError(exc.errno, exc.strerror or str(exc))
    return {
        "output": output,
        "returncode": -1,
        "exception_info": f"An error occurred while executing the command: {exc}",
        "extra": {"exception_type": type(exc).__name__, "exception": str(exc)},
    }


def _text(data: bytes | None) -> str:
    """As mini's ``Popen(text=True, encoding="utf-8", errors="replace")`` reads it (universal newlines)."""
    text = (data or b"").decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


class AgentcgroupEnvironment(LocalEnvironment):
    def __init__(self, *, config_class: type = AgentcgroupEnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(config_class=config_class, **kwargs)
        cfg = self.config
        self.session_name = cfg.session or f"mini-{os.getpid()}"
        self.limits = Limits.parse(memory=cfg.memory, memory_high=cfg.memory_high, cpu=cfg.cpu, pids=cfg.pids)
        socket_path = cfg.socket or os.environ.get("AGENTCG_SOCKET")
        self._client = None
        self._session: Session | None = None
        if socket_path:
            from ..daemon.client import Client

            self._client = Client(socket_path)
            self._client.open_session(
                self.session_name,
                priority=cfg.priority,
                limits={"memory": cfg.session_memory} if cfg.session_memory else None,
            )
        else:
            self._session = Session(
                self.session_name, priority=cfg.priority, limits=Limits.parse(memory=cfg.session_memory)
            ).open()
        atexit.register(self.close)

    def execute(self, action: dict[str, Any], cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
        command = action.get("command", "")
        cwd = os.path.abspath(cwd or self.config.cwd or os.getcwd())
        env = os.environ | self.config.env
        tmo = timeout or self.config.timeout
        try:
            if not os.path.exists(cwd):  # what Popen(cwd=) raises, word for word
                raise FileNotFoundError(2, os.strerror(2), cwd)
            out = self._run([self.config.shell, "-c", command], cwd, env, tmo)
        except Exception as exc:  # it never ran: mini's shape, and its loop goes on
            result = _error_result(exc)
            result["extra"]["agentcgroup"] = {"session": self.session_name, "error": str(exc)}
            self._check_finished(result)
            return result
        output = _text(out.stdout)
        if out.feedback:
            output += ("" if not output or output.endswith("\n") else "\n") + self.config.feedback_prefix + out.feedback
        ours = {k: v for k, v in out.to_dict().items() if k != "argv"}
        if out.killed_by == "timeout":
            result = _error_result(subprocess.TimeoutExpired(command, tmo), output)
        else:
            result = {"output": output, "returncode": out.returncode, "exception_info": "", "extra": {}}
        result["extra"]["agentcgroup"] = ours
        self._check_finished(result)
        return result

    def _run(self, argv: list[str], cwd: str, env: dict[str, str], timeout: float) -> Outcome:
        """One tool call; stdout and stderr captured through one pipe (mini's ``stderr=STDOUT``)."""
        keep = self.config.keep_background
        if self._client is not None:
            return self._client.run(
                self.session_name,
                argv,
                limits=self.limits,
                timeout=timeout,
                env=env,
                cwd=cwd,
                capture_output=True,
                merge_stderr=True,
                keep_background=keep,
            )
        assert self._session is not None
        return self._session.run(
            argv,
            limits=self.limits,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=DEVNULL,
            stderr=STDOUT,
            capture_output=True,
            keep_background=keep,
        )

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.close_session(self.session_name)
            except Exception:
                pass

    def serialize(self) -> dict[str, Any]:
        data = super().serialize()
        data["info"]["config"]["environment"]["agentcgroup_session"] = self.session_name
        return data
