"""Captured stdout and stderr keep the order a bare run shows (one pipe for both), embedded and through the
daemon, whether the output is captured or handed over as an fd."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentcgroup.spawn import STDOUT
from tests.conftest import SLOW, kernel_skip_reason
from tests.kernel.daemon_fixtures import PY, start_daemon, stop_daemon

pytestmark = [pytest.mark.kernel]

#: alternating writes to stdout and stderr, each flushed: one pipe shows them in exactly this order
WRITER = [
    sys.executable,
    "-c",
    'import os\nfor i in range(40):\n    os.write(1 + i % 2, f\'{"out" if i % 2 == 0 else "err"}{i}\\n\'.encode())',
]


def _bare() -> bytes:
    r = subprocess.run(WRITER, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60 * SLOW, check=True)
    return r.stdout


def _read_pipe_of(run) -> bytes:
    r, w = os.pipe()
    try:
        run(w)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        return f.read()


def test_embedded_order_matches_a_bare_run(session) -> None:
    bare = _bare()
    assert bare.count(b"\n") == 40 and bare.startswith(b"out0\nerr1\nout2\n")
    out = session.run(WRITER, capture_output=True, stderr=STDOUT)
    assert out.stdout == bare and not out.stderr
    handed = _read_pipe_of(lambda w: session.run(WRITER, stdout=w, stderr=STDOUT))
    assert handed == bare


@pytest.fixture
def daemon(tmp_path, root_name):
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    d = start_daemon(tmp_path, root_name)
    yield d
    stop_daemon(d, root_name)


def test_daemon_order_matches_a_bare_run(daemon) -> None:
    from agentcgroup.daemon.client import Client

    bare = _bare()
    c = Client(daemon.sock)
    c.open_session("order")
    try:
        out = c.run("order", WRITER, capture_output=True, merge_stderr=True)
        assert out.stdout == bare and not out.stderr
        handed = _read_pipe_of(lambda w: c.run("order", WRITER, stdout=w, merge_stderr=True))
        assert handed == bare
        split = c.run("order", WRITER, capture_output=True)  # asked for apart: apart, each in its order
        assert split.stdout == b"".join(line + b"\n" for line in bare.splitlines() if line.startswith(b"out"))
    finally:
        c.close_session("order")


def test_agentcg_run_with_one_pipe_keeps_the_order(daemon) -> None:
    bare = _bare()
    for extra in (["--socket", daemon.sock], []):
        env = {**os.environ}
        env.pop("AGENTCG_SOCKET", None)
        r = subprocess.run(
            [PY, "-m", "agentcgroup", "run", *extra, "--", *WRITER],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**env, "AGENTCG_ROOT": daemon.args[daemon.args.index("--root") + 1]},
            timeout=60 * SLOW,
        )
        assert r.returncode == 0 and r.stdout == bare, (extra, r.stdout[-500:])
