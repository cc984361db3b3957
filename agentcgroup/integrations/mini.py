"""mini-swe-agent environment: every command the agent issues is a tool call of one agentcgroup session.

    mini --environment-class agentcgroup.integrations.mini.AgentcgroupEnvironment \\
         -c mini.yaml -c environment.memory=2G -c environment.timeout=600

The observation the model sees is the command's output (stdout and stderr, interleaved as mini's local
environment gives them), then, when a limit acted, one line starting ``[agentcgroup]`` with the feedback (what
happened, the figures, what to try). The agent process itself moves into the session's agent leaf (protected;
never the victim of a tool call's overrun): the agent stays where it was started, outside the session, so no
tool call's limit or OOM can reach it. Through the daemon when ``socket`` (or ``$AGENTCG_SOCKET``) is set, else an
embedded controller in the agent's process.
"""

from __future__ import annotations

import atexit
import os
import subprocess
from typing import Any

from minisweagent.environments.local import LocalEnvironment, LocalEnvironmentConfig

from ..limits import Limits
from ..session import Session


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
        cwd = cwd or self.config.cwd or os.getcwd()
        env = os.environ | self.config.env
        argv = ["bash", "-c", command]
        tmo = timeout or self.config.timeout
        if self._client is not None:
            out = self._client.run(
                self.session_name, argv, limits=self.limits, timeout=tmo, env=env, cwd=cwd, capture_output=True
            )
            text = (out.stdout or b"") + (out.stderr or b"")
        else:
            assert self._session is not None
            r, w = os.pipe()  # one pipe for both streams: their order kept, as mini's local environment does
            try:
                handle = self._session.start(
                    argv,
                    limits=self.limits,
                    timeout=tmo,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=w,
                    stderr=w,
                )
            finally:
                os.close(w)
            chunks = []
            with os.fdopen(r, "rb") as f:
                while chunk := f.read(65536):
                    chunks.append(chunk)
            waited = handle.wait()
            assert waited is not None
            out = waited
            text = b"".join(chunks)
        output = text.decode("utf-8", errors="replace")
        if out.feedback:
            output += ("" if not output or output.endswith("\n") else "\n") + self.config.feedback_prefix + out.feedback
        result: dict[str, Any] = {"output": output, "returncode": out.returncode, "exception_info": ""}
        if out.killed_by == "timeout":
            result["exception_info"] = f"agentcgroup: the command ran past its {tmo} s time limit and was stopped"
        result["extra"] = {"agentcgroup": {k: v for k, v in out.to_dict().items() if k != "argv"}}
        self._check_finished(result)
        return result

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
