"""The Grafana dashboard's queries, asked of a real Prometheus that scrapes a real cluster, all return data.

The unit tests check that each query names exported metrics and parses; this
one checks that they mean something together: labels that joins match on
(process_* to chatcluster_process_info), histograms whose summed buckets give
a percentile, rates over real counters. Prometheus is Debian's `prometheus`
package (the one promtool comes from); without it the test fails saying so.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from chatwire import WsClient, pair_in_room
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.gateway import outlets
from chatcluster.proto import chat_pb2 as pb
from chatcluster.spawn import free_port_block

pytestmark = pytest.mark.e2e

RATE_WINDOW = "10s"  # what $__rate_interval stands for: ten one-second scrapes
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "chatcluster.json"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel query, Grafana's variables given values as Grafana would."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t["expr"].replace("$__rate_interval", RATE_WINDOW).replace("$job", ".*"))
            for p in board["panels"] for t in p.get("targets", [])]


class Prometheus:
    def __init__(self, binary: str, targets: list[str], data: Path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        config = data / "prometheus.yml"
        config.write_text(json.dumps({"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                                      "scrape_configs": [{"job_name": "chatcluster",
                                                          "static_configs": [{"targets": targets}]}]}))
        self.log = open(data / "prometheus.log", "wb")  # noqa: SIM115 - open while Prometheus runs
        self.proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={data}/tsdb",
                                      f"--web.listen-address=127.0.0.1:{port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as resp:
            answer = json.loads(resp.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def chatter(client, stop: threading.Event) -> None:
    """Chat, one message at a time: the next goes when this one's own copy came back (no pacing by sleep)."""
    n = 0
    while not stop.is_set():
        n += 1
        client.chat(f"{client.name} {n}")
        while True:
            msg = client.recv()
            if isinstance(msg, pb.S_ROOM_CHAT_NTF) and msg.sender.player_id == client.player_id:
                break


def drain(client, stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            client.recv(0.5)


def number(result: list[dict]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_every_dashboard_query_returns_data_from_a_real_prometheus(cluster_factory, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (Debian's package)")
    writer = outlets.available()  # the writer thread's figures exist only where it runs
    (tmp_path / "api.key").write_text("dashboard-test-key-0123456789abcdef\n")  # the API's figures, only when on
    cluster = cluster_factory(*(["--writer", "thread"] if writer else []), "--api-key-file", str(tmp_path / "api.key"))
    config = cluster.config
    targets = [f"{p.control_host}:{p.control_port}" for p in [*config.gateways, *config.shards]]
    a, b, room = pair_in_room(cluster.host, cluster.port, "dash", (unique("da"), unique("db")))
    js = WsClient(cluster.host, cluster.http_port, json=True)
    assert js.login(unique("dw")).success
    js.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    js.expect(pb.S_JOIN_ROOM_RES)
    stop = threading.Event()
    threads = [threading.Thread(target=chatter, args=(a, stop)), threading.Thread(target=chatter, args=(js, stop)),
               threading.Thread(target=drain, args=(b, stop))]
    prometheus = Prometheus(binary, targets, tmp_path, free_port_block(1))
    try:
        for t in threads:
            t.start()
        queries = [(title, expr) for title, expr in dashboard_queries() if writer or "_writer_" not in expr]
        messages_in = dict(queries)["Messages in/s"]
        empty: list[str] = []

        def answered() -> list | None:
            if number(prometheus.query('count(up{job="chatcluster"} == 1)')) != [len(targets)]:
                return None
            if not [v for v in number(prometheus.query(messages_in)) if v > 0]:
                return None
            results = [(title, expr, prometheus.query(expr)) for title, expr in queries]
            empty[:] = [f"{title}: {expr}" for title, expr, result in results if not result]
            return results if not empty else None

        try:
            results = wait_for(answered, timeout=60, interval=1.0, tolerate=(OSError,),
                               what="Prometheus to answer every dashboard query with data")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; no data for:\n" + "\n".join(empty)) from None
        by_title: dict[str, list[float]] = {}
        for title, _, result in results:
            by_title.setdefault(title, []).extend(number(result))
        assert by_title["Sessions"] == [3.0] and by_title["Processes"] == [len(targets)]
        assert by_title["Messages in/s"][0] > 0 and by_title["Deliveries/s"][0] > by_title["Messages in/s"][0]
        assert len(by_title["CPU per process"]) == len(targets)  # the join gave each process its role and id
        assert all(v > 0 for v in by_title["Resident memory per process"])
        flush = [v for v in by_title["Gateway loop pass (flush) duration"] if not math.isnan(v)]
        assert flush and all(0 < v < 1 for v in flush)
        assert [v for v in by_title["Shard wake-up handling time"] if not math.isnan(v)]
        assert by_title["Shard up, as each gateway sees it"] == [1.0] * len(config.shards)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        prometheus.stop()
        for client in (a, b, js):
            client.close()
