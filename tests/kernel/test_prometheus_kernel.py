"""A real Prometheus (Debian's ``prometheus`` package) scraping the daemon's /metrics every second: after a
memory-killed call and a throttled call, its HTTP API shows the kill and the throttle in ``agentcg_*`` series."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from agentcgroup.daemon.client import Client
from tests.conftest import SLOW
from tests.kernel.daemon_fixtures import PY, REPO, start_daemon, stop_daemon, wait_for
from tests.kernel.test_observe_kernel import HOG, free_ports

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.host_only(reason="Prometheus under TCG takes minutes; test_observe_kernel checks every family on v2"),
]

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: agentcg
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def prometheus_binary() -> str:
    """The prometheus binary, installing Debian's package where this host can (root, apt-get); else skip."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("prometheus is not installed and this host cannot install it (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    found = shutil.which("prometheus")
    if r.returncode != 0 or not found:
        pytest.skip(f"cannot install Debian's prometheus package: {(r.stderr or r.stdout).strip()[-300:]}")
    return found


def query(api: str, promql: str) -> list[dict]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scalar(api: str, promql: str) -> float:
    result = query(api, promql)
    return sum(float(r["value"][1]) for r in result)


def test_a_real_prometheus_sees_the_kill_and_the_throttle(tmp_path, root_name) -> None:
    binary = prometheus_binary()
    port, web = free_ports(2)  # the daemon's metrics and Prometheus's own API: never the same port
    d = start_daemon(
        tmp_path, root_name, "--metrics", f"127.0.0.1:{port}", "--stall-grace", "300ms", "--kill-after", "3s"
    )
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(CONFIG.format(port=port))
    log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed below
    prom = subprocess.Popen(
        [
            binary,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{web}"
    try:

        def ready() -> bool:
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{api}/-/ready", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(ready, "prometheus to be ready", timeout=60)
        wait_for(lambda: scalar(api, 'up{job="agentcg"}') == 1, "prometheus to scrape the daemon", timeout=30)
        before = scalar(api, 'agentcg_calls_finished_total{outcome="memory"}')
        assert before == 0

        c = Client(d.sock)
        c.open_session("p", limits={"memory": "1G"})
        killed = c.run("p", [PY, "-c", "bytearray(1 << 30)"], limits={"memory": "128M"})
        assert killed.killed_by == "memory"
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(out=c.run("p", [PY, "-c", HOG], limits={"memory_high": "64M"})), daemon=True
        )
        t.start()
        t0 = time.monotonic()
        # the throttle is visible while the call still runs (frozen after 300 ms, killed 3 s later)
        wait_for(
            lambda: scalar(api, 'agentcg_policy_actions_total{action="throttle"}') >= 1,
            "the throttle in prometheus",
            timeout=30,
        )
        throttle_seen_s = time.monotonic() - t0
        wait_for(
            lambda: scalar(api, 'agentcg_calls_finished_total{outcome="memory"}') >= 1,
            "the memory kill in prometheus",
            timeout=30,
        )
        assert scalar(api, "agentcg_kernel_oom_kills_total") >= 1
        assert scalar(api, 'agentcg_sessions{priority="normal"}') == 1
        assert scalar(api, 'agentcg_session_memory_budget_bytes{session="p"}') == 1 << 30
        t.join(30 * SLOW)
        assert [s.action for s in result["out"].steps] == ["throttle", "freeze", "kill"]
        wait_for(
            lambda: scalar(api, 'agentcg_calls_finished_total{outcome="memory"}') >= 2,
            "the second memory kill in prometheus",
            timeout=30,
        )
        wait_for(lambda: scalar(api, 'agentcg_policy_actions_total{action="freeze"}') >= 1, "the freeze", timeout=30)
        # a range query over what prometheus stored: the frozen call was seen frozen by some scrape
        assert scalar(api, 'max_over_time(agentcg_calls_running{phase="frozen"}[5m])') == 1
        assert throttle_seen_s < 15 * SLOW
        # every query of the Grafana dashboard in docs/ is valid PromQL over series that exist
        dashboard = json.loads((Path(REPO) / "docs" / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$session", ".*")
                query(api, expr)  # status success, or the assertion names the query
        assert query(api, "agentcg_session_memory_bytes"), "the dashboard's session variable has no values"
        c.close_session("p")
    finally:
        prom.terminate()
        try:
            prom.wait(30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
        stop_daemon(d, root_name)
