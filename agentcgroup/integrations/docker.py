"""A session that is a Docker container; each ``docker exec`` in it is a tool call in its own leaf.

    with DockerSession("local/py:1", limits=Limits.parse(memory="2G")) as box:
        out = box.run(["python3", "-m", "pytest", "-x"], memory="1G", timeout=600)

Layout (the cgroupfs driver, which this host's Docker uses)::

    <root>/<session>/                  the session: its budget, priority, CPU weight
    <root>/<session>/agent/            (the agent runtime, when it runs on the host)
    <root>/<session>/<container id>/   the container (``docker run --cgroup-parent <root>/<session>``)
    <root>/<session>/<container id>/<call id>/   one ``docker exec``: its limits, events, outcome

``--cgroup-parent`` is relative, and the cgroupfs driver resolves a relative parent against the cgroups of the
runtime (runc, started by dockerd's containerd) in each hierarchy, just as agentcgroup places its root beneath the
cgroups it started in. So the container lands under the session when dockerd runs in the cgroups agentcgroup
starts from (a dockerd started by the same service, or ``AGENTCG_ROOT`` set accordingly); the session checks
that it did and says plainly what to change when it did not.

A call is started as ``docker exec -i <id> sh -c 'read -r _ && exec "$@"' <gate> CMD...``: the command waits
inside the container (in the container's cgroup) on one line of stdin; the session finds its host pid by the
gate's name, moves it into the call's new leaf, then releases it, so the command and everything it starts run
in the leaf from its first instruction. The docker client itself stays outside the leaf: it does not count
against the call's memory.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from ..cgroupfs import remove_empty_up
from ..errors import AgentCgroupError, CgroupError, InvalidValue, NotFound
from ..limits import Limits
from ..outcome import Outcome
from ..parsers import parse_mountinfo, parse_proc_cgroup
from ..record.leaves import cmdline
from ..session import Session
from ..spawn import PIPE, Process, spawn
from ..toolcall import ToolCall

GATE = 'read -r _ && exec "$@"'
#: how long a ``docker exec`` may take to show its process inside the container
EXEC_START_S = 30.0


class DockerError(AgentCgroupError):
    """Docker refused or failed (the message holds what it printed)."""


class DockerSession:
    """An agentcgroup session whose work runs in a container. Creating it creates nothing; :meth:`open` does."""

    def __init__(
        self,
        image: str,
        name: str | None = None,
        *,
        limits: Limits | None = None,
        priority: str = "normal",
        command: Sequence[str] = ("sleep", "infinity"),
        run_args: Sequence[str] = ("--network", "none"),
        docker: str = "docker",
        host: str | None = None,
        root: str | None = None,
        session: Session | None = None,
    ) -> None:
        if not image or image.startswith("-"):
            raise InvalidValue("image", image, "expected an image name")
        self.image = image
        self.command = list(command)
        self.run_args = list(run_args)
        self.docker = docker
        self.env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
        self.session = session or Session(name, limits=limits, priority=priority, root=root, warm=0)
        self.container_id: str | None = None
        self.init_pid: int | None = None
        self._extra_dirs: list[str] = []  # the session's dirs the runtime made in hierarchies we do not manage
        self._root = root
        self._systemd: Any = None  # Docker's systemd cgroup driver (agentcgroup.systemd.docker), when in use

    # --- docker ------------------------------------------------------------------------------------------
    def _docker(self, *args: str, timeout: float = 120.0) -> str:
        try:
            r = subprocess.run(
                [self.docker, *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DockerError(f"docker {args[0]}: {exc}") from None
        if r.returncode != 0:
            raise DockerError(f"docker {args[0]} failed: {r.stderr.strip() or r.returncode}")
        return r.stdout.strip()

    # --- open and close ----------------------------------------------------------------------------------
    def open(self) -> DockerSession:
        driver = self._docker("info", "--format", "{{.CgroupDriver}}")
        if driver == "systemd":
            return self._open_systemd()
        s = self.session
        if not s.is_open:
            s.open()
        m = s.manager
        parent = f"{m.root_name}/{s.name}"
        try:
            if driver != "cgroupfs":
                raise DockerError(
                    f"Docker's cgroup driver is {driver!r}: container sessions need the cgroupfs driver "
                    "(dockerd --exec-opt native.cgroupdriver=cgroupfs); docs/integrations.md says why and what "
                    "the systemd driver gives instead"
                )
            cid = self._docker("run", "-d", "--cgroup-parent", parent, *self.run_args, self.image, *self.command)
            self.container_id = cid
            self.init_pid = int(self._docker("inspect", "-f", "{{.State.Pid}}", cid))
            session_cg = m.open((s.name,))
            if self.init_pid not in m.pids(session_cg):
                where = _read(f"/proc/{self.init_pid}/cgroup").strip().replace("\n", "; ")
                raise DockerError(
                    f"container {cid[:12]} did not land under session {s.name!r}: Docker resolves "
                    f"--cgroup-parent {parent} against its runtime's own cgroups, and its runtime is not in the "
                    f"cgroups agentcgroup starts from (the container is in: {where}). Run dockerd in the same "
                    "cgroups as agentcgroup, or see docs/integrations.md for the systemd driver."
                )
            self._extra_dirs = self._session_dirs(self.init_pid, cid)
            self.container_cg = m.create((s.name, cid))  # exists (the runtime made it): opened, not created
        except BaseException:
            self.close()
            raise
        return self

    def _open_systemd(self) -> DockerSession:
        """Docker's systemd cgroup driver: a slice per session, calls beneath the container's scope
        (agentcgroup.systemd.docker)."""
        from ..systemd.docker import SystemdDriver

        self._systemd = SystemdDriver(self.session, self._root)
        try:
            parent = self._systemd.open_slice()
            cid = self._docker("run", "-d", "--cgroup-parent", parent, *self.run_args, self.image, *self.command)
            self.container_id = cid
            self.init_pid = int(self._docker("inspect", "-f", "{{.State.Pid}}", cid))
            self.session = self._systemd.adopt(cid, self.init_pid)
        except BaseException:
            self.close()
            raise
        return self

    def _session_dirs(self, pid: int, cid: str) -> list[str]:
        """The session's directory in every hierarchy the container is in. The runtime creates the container in
        all of them (blkio, devices, cpuset...), so the session's path appears in hierarchies agentcgroup does not
        manage; these are removed again (if empty) once the session is closed."""
        mounts = [m for m in parse_mountinfo(_read("/proc/self/mountinfo")) if m.fstype in ("cgroup", "cgroup2")]
        out = []
        for entry in parse_proc_cgroup(_read(f"/proc/{pid}/cgroup")):
            if not entry.path.endswith(f"/{cid}"):
                continue
            for m in mounts:  # the hierarchy's mount: cgroup2 for entry 0, else the one with its controllers
                if (m.fstype == "cgroup2") == (entry.hierarchy_id == 0) and set(entry.controllers) <= set(
                    m.super_options
                ):
                    out.append(m.mountpoint + entry.path[: -len(cid) - 1])
                    break
        return out

    def close(self) -> None:
        """Remove the container (its calls are killed with it), then the session and everything of it."""
        if self._systemd is not None and self.session.is_open:  # calls end first: their leaves are in the scope
            self.session.close()
        cid, self.container_id = self.container_id, None
        try:
            if cid is not None:
                try:
                    self._docker("rm", "-f", cid, timeout=120)
                except DockerError:
                    pass
                cg = getattr(self, "container_cg", None)
                if cg is not None:
                    try:
                        self.session.manager.destroy(cg)  # the runtime removed its dirs: forget the handle
                    except (NotFound, CgroupError):
                        pass
        finally:
            root = self.session.manager.root_name if self.session.is_open else None
            if self.session.is_open:
                self.session.close()
            for d in self._extra_dirs:
                if root is not None:
                    remove_empty_up(d, stop_at=root)
            self._extra_dirs = []
            if self._systemd is not None:
                self._systemd.close()

    def __enter__(self) -> DockerSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tool calls --------------------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        capture_output: bool = True,
        exec_args: Sequence[str] = (),
        **kwargs: Any,
    ) -> Outcome:
        """Run ``argv`` in the container as one tool call; its outcome (output captured by default).

        Limits and intent as for :meth:`Session.start` (``memory=``, ``memory_high=``, ``cpu=``, ``pids=``,
        ``timeout=``, ``intent=``, ``limits=``); ``exec_args`` go to ``docker exec`` (``-u``, ``-w``, ``-e``);
        ``input`` is written to the command's stdin.
        """
        if self.container_id is None:
            raise AgentCgroupError("the container session is not open")
        if not argv:
            raise InvalidValue("command", list(argv), "must not be empty")

        def launch(call: ToolCall, stdin: Any, stdout: Any, stderr: Any) -> Process:
            return self._launch(call, list(exec_args), input, stdout, stderr)

        out = self.session.start(
            list(argv),
            capture_output=capture_output,
            launcher=launch,
            parent=None if self._systemd else (self.session.name, self.container_id),
            **kwargs,
        ).wait()
        assert out is not None
        return out

    def _launch(self, call: ToolCall, exec_args: list[str], data: bytes | None, stdout: Any, stderr: Any) -> Process:
        assert call.cg is not None and self.container_id is not None
        m = self.session.manager
        gate = f"agentcg-gate-{call.call_id}"
        client = spawn(
            [self.docker, "exec", "-i", *exec_args, self.container_id, "sh", "-c", GATE, gate, *call.argv],
            env=self.env,
            stdin=PIPE,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            pid = self._find_gate(gate, client)
            m.attach(call.cg, pid)
            assert client.stdin is not None
            client.stdin.write(b"\n" + (data or b""))
            client.stdin.flush()
            client.stdin.close()
            client.stdin = None
        except BaseException:
            client.send_signal(9)
            client.wait()
            client.close()
            raise
        return client

    def _find_gate(self, gate: str, client: Process) -> int:
        m = self.session.manager
        deadline = time.monotonic() + EXEC_START_S
        while True:
            for pid in self._systemd.container_pids() if self._systemd else m.pids(self.container_cg):
                argv = cmdline(pid) or []
                if gate in argv and argv[0].endswith("sh"):
                    return pid
            if client.poll() is not None:
                err = client.stderr.read().decode(errors="replace").strip() if client.stderr is not None else ""
                raise DockerError(f"docker exec ended before its command started (exit {client.returncode}) {err}")
            if time.monotonic() > deadline:
                raise DockerError(f"docker exec did not start its command within {EXEC_START_S:.0f} s")
            time.sleep(0.002)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
