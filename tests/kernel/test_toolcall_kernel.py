"""Tool calls on the real kernel of this host (hybrid on the CI machine; v2 inside the scripts/vm-test guest)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from agentcgroup import AgentCgroupError, LimitRejected, Limits, Session
from tests.conftest import SLOW, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.v2]

PY = sys.executable


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_allocation_over_the_limit_is_reported_as_a_memory_kill(session: Session) -> None:
    out = session.run([PY, "-c", "bytearray(1 << 30)"], memory="256M")
    assert out.killed_by == "memory"
    assert out.signal == 9 and out.returncode == 137
    assert out.oom_kills >= 1
    assert 200 << 20 <= out.memory_peak <= 257 << 20
    assert out.memory_limit == 256 << 20
    assert "out of memory" in out.feedback and "256 MiB" in out.feedback


def test_a_call_under_its_limit_is_untouched(session: Session) -> None:
    out = session.run([PY, "-c", "b = bytearray(50 << 20); print(len(b))"], memory="256M", capture_output=True)
    assert out.ok, out
    assert out.stdout == b"52428800\n"
    assert out.killed_by is None and out.feedback is None
    assert out.memory_peak >= 50 << 20
    assert out.cpu_s is not None and out.cpu_s > 0


FORKER = textwrap.dedent(
    """
    import os, sys, time
    pidfile, linger = sys.argv[1], float(sys.argv[2])
    for i in range(50):
        r, w = os.pipe()
        if os.fork() == 0:            # child
            os.setsid()               # new session: out of our process group
            if os.fork() == 0:        # grandchild, double-forked: re-parented away from us
                os.close(r)
                os.write(w, str(os.getpid()).encode()); os.close(w)
                time.sleep(120)
                os._exit(0)
            os._exit(0)
        os.close(w)
        pid = os.read(r, 32).decode(); os.close(r)
        with open(pidfile, "a") as f:
            f.write(pid + "\\n")
        os.wait()
    time.sleep(linger)
    """
)


@pytest.mark.parametrize("linger", [0.0, 60.0], ids=["parent-exits", "parent-times-out"])
def test_no_grandchild_survives(session: Session, tmp_path, linger: float) -> None:
    pidfile = tmp_path / "pids"
    out = session.run([PY, "-c", FORKER, str(pidfile), str(linger)], timeout=3 * SLOW if linger else 30 * SLOW)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 50
    if linger:
        assert out.killed_by == "timeout" and out.returncode == 137
    else:
        assert out.exit_code == 0 and out.leftover_killed == 50
    deadline = time.monotonic() + 2
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for p in pids if alive(p)] == []


def test_pids_max_stops_a_fork_bomb(session: Session) -> None:
    """The kernel's own count of the leaf's tasks (pids.current), sampled while the bomb runs, never passes
    pids.max; forks past it were refused; the whole tree went with the call."""
    bomb = "f() { f | f & }; f; sleep 30"
    h = session.start(["bash", "-c", bomb], pids=64, timeout=3)
    seen: list[int] = []
    while not h.done():
        cg = h.call.cg if h.call is not None else None
        if cg is not None:
            try:
                seen.append(session.manager.stats(cg).pids_current or 0)
            except AgentCgroupError:  # the leaf went away as the call ended
                pass
        time.sleep(0.005)
    out = h.wait()
    assert out.pids_denied > 0 and "refused" in out.feedback
    assert 32 <= max(seen) <= 64, max(seen)  # it reached the limit, and never went past it
    assert out.killed_by == "timeout"


def test_cpu_quota_holds_a_busy_loop(session: Session) -> None:
    """A loop that needs 0.4 s of CPU (its own clock, not the wall's) under a 20 % quota takes 2 s at least,
    however idle the host; a busy host only makes it longer. The kernel's own count says how much it used."""
    out = session.run([PY, "-c", "import time\nwhile time.process_time() < 0.4: pass"], cpu="20%")
    assert out.exit_code == 0
    assert out.duration_s >= 0.4 / 0.2 * 0.9, out.duration_s
    share = out.cpu_s / out.duration_s
    assert share <= 0.25, f"got {share:.0%} of a core under a 20% quota"


SPAWN_INTO = """
import sys
from agentcgroup import get_manager
m = get_manager(sys.argv[1])
p = m.spawn(m.open(("s", "tools", "pre")), ["/bin/true"])
sys.exit(p.wait())
"""


def test_the_spawned_child_is_in_its_leaf_before_it_execs(manager) -> None:
    """Caught between placement and exec: the leaf is frozen, so the spawner's child stops as soon as its write
    to cgroup.procs returns, before it can exec. It is then in the leaf (the kernel lists it there) and still
    runs the spawner's image, not the command's; thawed, it execs the command, which exits 0. (The spawner runs
    in a process of its own: it waits in vfork for its child's exec.)"""
    cg = manager.create(("s", "tools", "pre"))
    spawner = None
    try:
        manager.freeze(cg)
        spawner = subprocess.Popen([PY, "-c", SPAWN_INTO, manager.root_name])
        wait_for(lambda: manager.pids(cg), "the child in its leaf")
        (pid,) = manager.pids(cg)
        assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(PY)  # not exec'd yet, already placed
        manager.thaw(cg)
        assert spawner.wait(30 * SLOW) == 0  # /bin/true ran, in the leaf
    finally:
        manager.thaw(cg)
        if spawner is not None and spawner.poll() is None:
            spawner.kill()
            spawner.wait()
        manager.destroy(manager.open(("s",)))


def test_the_process_is_in_its_leaf_when_it_runs(session: Session) -> None:
    """The command reads its own cgroups (a warm spare's stub exec'd into it): the leaf in every hierarchy."""
    out = session.run([PY, "-c", "print(open('/proc/self/cgroup').read())"], capture_output=True, memory="64M")
    lines = out.stdout.decode().splitlines()
    leaf = f"{session.name}/tools/{out.call_id}"
    placed = [line for line in lines if line.endswith(leaf)]
    layout = session.manager.layout
    expected = (1 if layout.unified else 0) + (1 if "memory" in layout.v1 else 0)
    assert len(placed) >= expected, lines


def test_direct_spawn_path_places_too(manager) -> None:
    """Without the warm pool (CLI path) the C spawner places the child between vfork and exec."""
    with Session("direct", manager=manager, warm=0) as s:
        out = s.run([PY, "-c", "print(open('/proc/self/cgroup').read())"], capture_output=True)
    assert f"direct/tools/{out.call_id}" in out.stdout.decode()


def test_exit_codes_and_signals_are_mirrored(session: Session) -> None:
    assert session.run(["sh", "-c", "exit 3"]).returncode == 3
    out = session.run(["sh", "-c", "kill -TERM $$"])
    assert out.signal == 15 and out.returncode == 143 and out.killed_by == "signal"


def test_output_passes_through_untouched(session: Session) -> None:
    data = bytes(range(256)) * 1000
    out = session.run([PY, "-c", "import sys; sys.stdout.buffer.write(bytes(range(256)) * 1000)"], capture_output=True)
    assert out.stdout == data


def test_lowering_a_limit_below_unreclaimable_usage_is_rejected(manager) -> None:
    with Session("rej", manager=manager, warm=0) as s:
        call = s.start([PY, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"], timeout=20)
        try:
            deadline = time.monotonic() + 10
            while manager.stats(call.call.cg).memory_current < 60 << 20:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            if manager.kind == "v2":
                pytest.skip("v2 memory.max accepts any value and OOM-kills instead of refusing")
            with pytest.raises(LimitRejected) as err:
                manager.set_limits(call.call.cg, Limits(memory_max=8 << 20))
            assert str(8 << 20) in str(err.value)
        finally:
            call.kill("test over")
            call.wait()


def test_soft_limit_throttles_then_lets_go(session: Session) -> None:
    out = session.run(
        [PY, "-c", "b = bytearray(300 << 20); print('done')"],
        memory="1G",
        memory_high="200M",
        capture_output=True,
    )
    assert out.exit_code == 0 and out.stdout == b"done\n"
    if session.manager.kind == "v2":
        assert out.memory_high_events > 0
    else:
        actions = [s.action for s in out.steps]
        assert actions[:2] == ["throttle", "release"], out.steps
        assert out.steps[1].at - out.steps[0].at >= 0.9


def test_tree_is_empty_after_a_test_that_fails_midway(tmp_path, root_name) -> None:
    """Run a test file that fails in the middle of a tool call; afterwards nothing of its root is left."""
    import subprocess

    from tests.conftest import kernel_skip_reason, leftovers

    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    test = tmp_path / "test_fails_midway.py"
    test.write_text(
        textwrap.dedent(f"""
        import sys
        from agentcgroup import Session
        def test_fails():
            with Session("midway", root={root_name!r}) as s:
                call = s.start([sys.executable, "-c", "import time; time.sleep(60)"])
                assert call.call.cg is not None
                raise RuntimeError("boom in the middle of a tool call")
    """)
    )
    r = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "boom in the middle" in r.stdout
    assert leftovers(root_name) == []


@pytest.mark.parametrize("warm", [0, 1])
def test_new_session_starts_the_command_without_a_controlling_terminal(manager, warm: int) -> None:
    """``new_session=True`` (the daemon sets it for every call): setsid before exec, on the warm stub's path and
    on the spawner's; without it the command stays in our session."""
    probe = [PY, "-c", "import os; print(os.getsid(0) == os.getpid())"]
    with Session("ns", manager=manager, warm=warm) as s:
        if warm:
            wait_for(lambda: manager.children(("ns", "tools")), "the warm spare")
        assert s.run(probe, capture_output=True, new_session=True).stdout == b"True\n"
        assert s.run(probe, capture_output=True).stdout == b"False\n"


def test_one_thread_makes_every_sessions_spares(manager) -> None:
    """Three sessions' warm pools share one refilling thread: each gets its spare, calls take them and get new
    ones, and the thread ends once the last pool closes."""
    import threading

    from agentcgroup import Controller, ControllerConfig
    from tests.conftest import wait_for

    def warm_threads() -> int:
        return sum(t.name == "agentcg-warm" and t.is_alive() for t in threading.enumerate())

    def spares(i: int) -> int:
        return len(manager.children((f"s{i}", "tools")))

    with Controller(manager, config=ControllerConfig(warm=1)) as ctl:
        for i in range(3):
            ctl.open_session(f"s{i}")
        wait_for(lambda: all(spares(i) == 1 for i in range(3)), "a spare in each session")
        assert warm_threads() == 1
        for _ in range(2):
            for i in range(3):
                out = ctl.run(f"s{i}", ["true"])
                assert out.exit_code == 0 and out.error is None, out
        wait_for(lambda: all(spares(i) == 1 for i in range(3)), "the spares made again, the finished leaves gone")
        assert warm_threads() == 1
        for i in range(3):
            ctl.close_session(f"s{i}")
    wait_for(lambda: warm_threads() == 0, "the refilling thread gone with the last pool")


def test_a_finished_leaf_waits_for_a_spare_being_placed_not_the_outcome(manager, monkeypatch, tmp_path) -> None:
    """While the warm pool's thread moves a new spare's stub into its leaf (after a quiet spell that holds the
    kernel's cgroup lock through an RCU grace period, and an rmdir meanwhile waits 10-30 ms), a call that ends
    hands its empty leaf to that thread instead of removing it itself: the outcome comes at once, and the leaf
    goes right after the spare is placed. (The placement is held here by the test, standing in for the grace
    period.)"""
    import threading

    from agentcgroup import Controller, ControllerConfig
    from agentcgroup.stub import Stub
    from agentcgroup.warm import WarmPool

    gate, placing, release = threading.Event(), threading.Event(), threading.Event()
    real_place = Stub.place

    def held_place(self, fds):  # type: ignore[no-untyped-def]
        if gate.is_set():
            placing.set()
            release.wait(30)
        real_place(self, fds)

    monkeypatch.setattr(Stub, "place", held_place)
    # the first spare is the call's only once it is ready (placed and in the pool), not when its leaf appears:
    # a call that comes earlier makes a leaf of its own, and no second spare is placed for the test to hold
    refilled = threading.Event()
    real_refill = WarmPool.refill

    def refill(self):  # type: ignore[no-untyped-def]
        real_refill(self)
        refilled.set()

    monkeypatch.setattr(WarmPool, "refill", refill)

    def leaves() -> list[str]:
        return manager.children(("s", "tools"))

    go = tmp_path / "go"
    with Controller(manager, config=ControllerConfig(warm=1)) as ctl:
        try:
            ctl.open_session("s")
            assert refilled.wait(10 * SLOW), "the session's first spare was not made"
            assert len(leaves()) == 1, leaves()
            gate.set()
            h = ctl.submit("s", ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.01; done"])
            assert placing.wait(10 * SLOW), "the pool's thread did not start placing the next spare"
            go.touch()
            out = h.wait(10 * SLOW)
            assert out is not None and out.exit_code == 0 and out.error is None, out
            assert out.call_id in leaves(), "the leaf was removed on the outcome's path, under the placement"
            release.set()
            wait_for(lambda: out.call_id not in leaves(), "the finished leaf removed once the spare was placed")
        finally:
            release.set()


def test_figures_of_a_leaf_gone_from_one_hierarchy_are_not_found(manager) -> None:
    """A finished leaf is removed one rmdir a hierarchy, the main one first; when a later one refuses (a tool
    made a child cgroup there), the leaf is gone from the main hierarchy only, until destroy does the rest. A
    thread reading its figures meanwhile (the admission, the controller's snapshot) gets NotFound, which they
    take as a gone cgroup's empty figures, not a KeyError (one escaped a capacity run as a traceback)."""
    from agentcgroup.errors import NotFound

    cg = manager.create(("s", "tools", "c1"), full=True)
    others = [r for r in cg.backend_data["dirs"] if r != manager.main_role]
    if not others:
        manager.destroy(manager.open(("s",)))
        pytest.skip("one hierarchy (cgroup v2): a leaf goes with one rmdir, never half")
    child = os.path.join(cg.backend_data["dirs"][others[0]].path, "tool-made")
    os.mkdir(child)
    try:
        assert not manager.remove_if_empty(cg), "a leaf with a child in one hierarchy was removed"
        with pytest.raises(NotFound):
            manager.stats(cg)
        with pytest.raises(NotFound):
            manager.memory_current(cg)
    finally:
        os.rmdir(child)
        manager.destroy(cg)
        manager.destroy(manager.open(("s",)))


def test_spares_skip_a_hierarchy_no_call_needed_and_a_call_that_needs_it_is_placed_there(manager) -> None:
    """On a v1 host a spare is made in the ``cpu`` hierarchy only once a call of its pool asked for a CPU limit
    (a mkdir, an rmdir and a move a call less for the others); a call with a CPU limit that takes a spare made
    without it has its stub moved there before it execs: its command runs in its leaf there, and the pool's next
    spares have it."""
    from agentcgroup import Controller, ControllerConfig

    if "cpu" not in manager.full_roles() or "cpu" in manager.always_roles:
        pytest.skip("no cgroup v1 cpu hierarchy of its own here (cgroup v2: one hierarchy)")
    cpu_tools = os.path.join(manager.root_path("cpu"), "s", "tools")

    seen: set[str] = set()

    def spare() -> str:
        """The session's next spare, once it is ready (placed and in the pool: a call takes no spare before)."""
        (s,) = ctl.session_states()

        def ready() -> str | None:
            names = [cg.path[-1] for cg, _stub in list(s.pool._ready)] if s.pool is not None else []
            return next((n for n in names if n not in seen), None)

        wait_for(ready, "the session's next spare")
        name = ready()
        assert name is not None
        seen.add(name)
        return name

    probe = [PY, "-c", "print(open('/proc/self/cgroup').read())"]
    with Controller(manager, config=ControllerConfig(warm=1, warm_after=0)) as ctl:
        ctl.open_session("s")
        assert os.path.isdir(os.path.join(cpu_tools, spare()))  # no call seen yet: every hierarchy
        assert ctl.run("s", ["true"], limits=Limits(pids_max=64)).exit_code == 0
        narrow = spare()
        assert not os.path.exists(os.path.join(cpu_tools, narrow))  # made for calls like that one
        assert os.path.isdir(os.path.join(manager.root_path("pids"), "s", "tools", narrow))
        out = ctl.run("s", probe, limits=Limits(cpu=0.5), capture_output=True)
        assert out.exit_code == 0 and out.call_id == narrow, out
        lines = [line.split(":", 2) for line in out.stdout.decode().splitlines() if line]
        (cpu_line,) = [path for _, ctrl, path in lines if "cpu" in ctrl.split(",")]
        assert cpu_line.endswith(f"/s/tools/{narrow}"), lines
        assert os.path.isdir(os.path.join(cpu_tools, spare()))  # the next spares have it again


def test_a_spare_stub_has_no_environment_and_its_command_gets_this_process_one(manager, monkeypatch) -> None:
    """The stub is spawned with an empty environment (it reads none); the command it execs gets the one it is
    sent: this process's when the call gives none, the call's own otherwise."""
    from agentcgroup import Controller, ControllerConfig

    monkeypatch.setenv("AGENTCG_TEST_PROBE", "from-the-parent")
    probe = ["/bin/sh", "-c", 'echo "${AGENTCG_TEST_PROBE-unset}"']
    with Controller(manager, config=ControllerConfig(warm=1, warm_after=0)) as ctl:
        ctl.open_session("s")
        (s,) = ctl.session_states()
        wait_for(lambda: s.pool is not None and len(s.pool._ready) == 1, "the session's spare")
        (cg, stub) = s.pool._ready[0]
        with open(f"/proc/{stub.pid}/environ", "rb") as f:
            assert f.read() == b""
        out = ctl.run("s", probe, capture_output=True)
        assert out.call_id == cg.path[-1] and out.stdout == b"from-the-parent\n", out
        wait_for(lambda: len(s.pool._ready) == 1, "the next spare")
        out = ctl.run("s", probe, env={"AGENTCG_TEST_PROBE": "the-call's"}, capture_output=True)
        assert out.stdout == b"the-call's\n", out


def _placed(out, manager) -> None:
    """The command ran in its call's leaf from its first instruction: ``cat /proc/self/cgroup`` (the exec'd
    command itself) names the call's leaf in the memory hierarchy (v1) and in cgroup2."""
    assert out.exit_code == 0 and out.error is None, out
    lines = [line.split(":", 2) for line in out.stdout.decode().splitlines() if line]
    paths = [path for _, ctrl, path in lines if ctrl == "" or "memory" in ctrl.split(",")]
    assert paths and all(p.endswith(f"/s/tools/{out.call_id}") for p in paths), (out.call_id, lines)


def test_the_pool_steps_aside_under_back_to_back_calls_and_fills_again_after_a_pause(manager) -> None:
    """A spare costs more than the direct spawn it replaces while calls come back to back (no quiet spell: the
    move is cheap then), so the pool makes none until no call has started for ``warm_quiet``: a burst takes the
    spares ready and then spawns directly, every command placed before it runs either way; the pool is full
    again after the pause, and the next call takes a spare. (``warm_quiet`` is 1 s here, so that a slow host's
    calls in a row are still back to back.)"""
    from agentcgroup import Controller, ControllerConfig

    probe = ["cat", "/proc/self/cgroup"]
    with Controller(manager, config=ControllerConfig(warm=2, warm_after=0, warm_quiet=1.0)) as ctl:
        ctl.open_session("s")
        (s,) = ctl.session_states()
        pool = s.pool
        assert pool is not None
        wait_for(lambda: pool.ready == 2, "the session's two spares")
        assert (pool.made, pool.taken, pool.missed) == (2, 0, 0) and not pool.aside
        outs = [ctl.run("s", probe, capture_output=True) for _ in range(8)]
        assert (pool.taken, pool.missed) == (2, 6)
        assert pool.made == 2 and pool.ready == 0 and pool.aside  # none made while the calls came
        for out in outs:
            _placed(out, manager)
        assert len({out.call_id for out in outs}) == 8
        wait_for(lambda: pool.ready == 2, "the spares made again once the calls paused")
        assert pool.made == 4 and not pool.aside
        ready = [cg.path[-1] for cg, _stub in list(pool._ready)]
        out = ctl.run("s", probe, capture_output=True)
        _placed(out, manager)
        assert pool.taken == 3 and out.call_id == ready[0]


def test_with_warm_quiet_zero_the_pool_refills_between_calls_in_a_row(manager) -> None:
    """``warm_quiet=0``: the pool never steps aside (the behaviour before it could): each call of a slow
    series finds a spare made after the call before it."""
    from agentcgroup import Controller, ControllerConfig

    with Controller(manager, config=ControllerConfig(warm=1, warm_after=0, warm_quiet=0)) as ctl:
        ctl.open_session("s")
        (s,) = ctl.session_states()
        pool = s.pool
        assert pool is not None
        for _ in range(3):
            wait_for(lambda: pool.ready == 1, "the spare")
            assert not pool.aside
            out = ctl.run("s", ["cat", "/proc/self/cgroup"], capture_output=True)
            _placed(out, manager)
        assert pool.taken == 3 and pool.missed == 0
