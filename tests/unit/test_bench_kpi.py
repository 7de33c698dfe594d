"""chatctl bench: from per-second process reports to the seed's tables, KPIs and verdict (no sockets)."""

from __future__ import annotations

import json

import pytest

from chatcluster.loadtest.accounting import encode_histogram, new_histogram, record_us
from chatcluster.loadtest.kpi import Aggregator, headline, rate_row
from chatcluster.loadtest.profile import Profile
from chatcluster.loadtest.report import fmt, render_result, server_table
from chatcluster.loadtest.server import Sample, dig, server_row, server_window


def hist_of(*values: int) -> str:
    h = new_histogram()
    for v in values:
        record_us(h, v)
    return encode_histogram(h)


def cumulative(k: int, *, msgs: int, fanout: int, warm: int) -> dict:
    """A worker's cumulative counters after k seconds of steady sending (msgs per second)."""
    sent = msgs * k
    measured = msgs * max(0, k - warm)
    return {"io_r": 10 * sent, "io_s": sent, "bytes_r": 100 * sent * fanout, "bytes_s": 80 * sent, "frames_r": 0,
            "app_in": sent, "deliveries": sent * fanout, "measured_sent": measured, "expected": measured * fanout,
            "delivered": measured * fanout, "own_received": sent, "latencies": measured, "lag_sum_us": sent * 10,
            "late": 0}


def report(k: int, *, msgs: int = 100, fanout: int = 5, warm: int = 1, values: tuple[int, ...] = ()) -> dict:
    return {"k": k, "counts": cumulative(k, msgs=msgs, fanout=fanout, warm=warm), "hist": hist_of(*values),
            "lag_max_us": 7, "cpu_s": 0.5 * k}


def profile(**kw) -> Profile:
    base = dict(clients=10, rooms=2, rps=20.0, duration=4, warmup=1, interval=2, runtag="t")
    base.update(kw)
    return Profile(**base)


def test_ticks_line_up_across_processes_and_rows_close_every_interval():
    agg = Aggregator(profile(), procs=2)
    assert agg.row_ends() == [3, 5]
    done = agg.add_tick(1, report(0))            # worker 1 first: nothing complete yet
    assert done == []
    done = agg.add_tick(0, report(0))
    assert [t["k"] for t in done] == [0]
    for k in range(1, 6):
        agg.add_tick(0, report(k, values=(100 * k,) * (k > 1)))
        ticks = agg.add_tick(1, report(k, values=(100 * k,) * (k > 1)))
        assert [t["k"] for t in ticks] == [k]
        tick = ticks[0]
        assert tick["app_in_s"] == 200 and tick["bc_deliv_s"] == 1000 and tick["io_r_s"] == 2000
        assert tick["phase"] == ("warmup" if k <= 1 else "measured") and tick["t"] == k - 1
        assert tick["cpu_percent"] == [50.0, 50.0]
    assert agg.done
    rows = agg.take_new_rows()
    assert [(r["sec"], r["seconds"]) for r in rows] == [(2, 2), (4, 2)]
    first = rows[0]
    assert first["app_in_s"] == 200 and first["app_out_s"] == first["bc_deliv_s"] == 1000
    assert first["bytes_r_s"] == 100_000 and first["bytes_s_s"] == 16_000 and first["io_s_s"] == 200
    assert first["latency_count"] == 4 and first["p50"] == pytest.approx(200, rel=0.01)
    assert first["max"] == pytest.approx(300, rel=0.01)
    assert agg.take_new_rows() == []


def test_a_duration_that_is_not_a_multiple_of_the_interval_ends_with_a_short_row():
    agg = Aggregator(profile(duration=5, interval=2, warmup=0), procs=1)
    assert agg.row_ends() == [2, 4, 5]
    for k in range(6):
        agg.add_tick(0, report(k, warm=0))
    assert [(r["sec"], r["seconds"]) for r in agg.rows] == [(2, 2), (4, 2), (5, 1)]
    assert agg.rows[-1]["app_in_s"] == 100


def finals(n: int, **extra) -> dict:
    counts = cumulative(5, msgs=100, fanout=5, warm=1)
    counts.update(extra)
    return {w: {"counts": counts, "hist": hist_of(50_000), "errors_sample": [], "cpu_s": 3.0} for w in range(n)}


def run_aggregator(procs: int = 2) -> Aggregator:
    agg = Aggregator(profile(), procs=procs)
    for k in range(6):
        for w in range(procs):
            agg.add_tick(w, report(k, values=(120, 900, 4000) if k > 1 else ()))
    return agg


def test_finish_gives_kpis_latency_and_a_clean_verdict():
    result = run_aggregator().finish(finals(2), server_writes_per_s=400.0)
    k = result["kpi"]
    assert k["throughput_msgs_s"] == 200
    assert k["bc_deliveries_s"] == 1000
    assert k["bandwidth_out_MB_s"] == pytest.approx(100 * 1000 / 1e6)
    assert k["fanout"] == 5 and k["fanout_expected"] == 5
    assert k["send_ops_s"] == 400 and k["send_ops_source"] == "gateway writes"
    assert k["sg_efficiency"] == pytest.approx(2.5)
    lat = result["latency"]
    assert lat["count"] == 2 * 4 * 3 + 2       # 4 measured ticks x 3 values x 2 workers + 1 late value each
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert lat["max"] == pytest.approx(50_000, rel=0.001)
    assert result["latency_buckets"] == {"<=100us": 0, "<=500us": 8, "<=1ms": 8, "<=5ms": 8, "<=50ms": 2, ">50ms": 0}
    assert result["total"]["app_in_s"] == 200 and result["total"]["seconds"] == 4
    assert result["ok"] and result["failures"] == {}
    c = result["correctness"]
    assert c["measured_sent"] == 2 * 400 and c["expected_deliveries"] == c["delivered"] == 2 * 2000
    assert c["completeness"] == 1.0
    assert result["loadgen"]["behind_schedule"] is False and result["loadgen"]["warnings"] == []
    assert result["loadgen"]["cpu_percent"] == {"0": 50.0, "1": 50.0}
    json.dumps(result)  # every figure is JSON


def test_any_correctness_counter_fails_the_run():
    result = run_aggregator().finish(finals(2, lost=1, delivered=cumulative(5, msgs=100, fanout=5, warm=1)
                                            ["delivered"] - 3))
    assert not result["ok"]
    assert result["failures"] == {"lost": 2, "missing_deliveries": 6}


@pytest.mark.parametrize("cpu_per_s, cpus, advice", [
    (0.5, 2, "competes with the server"),   # the processes idle half the time: the machine is out of CPU
    (0.95, 4, "try --procs 2"),            # a saturated process, and cores to spare
    (0.95, 1, "no more cores"),
])
def test_falling_behind_the_schedule_is_reported_as_the_load_generators_bottleneck(cpu_per_s, cpus, advice):
    agg = Aggregator(profile(), procs=1, cpus=cpus)
    for k in range(6):
        r = report(k)
        r["counts"]["app_in"] = 180 * k               # sent 90 % of the target (200 msgs/s)
        r["counts"]["late"] = 20 * k
        r["cpu_s"] = cpu_per_s * k
        agg.add_tick(0, r)
    result = agg.finish(finals(1))
    lg = result["loadgen"]
    assert lg["behind_schedule"] and lg["sent_ratio"] == pytest.approx(0.9)
    assert "bottleneck" in lg["warnings"][0] and advice in lg["warnings"][0]
    assert lg["cpu_percent"] == {"0": pytest.approx(100 * cpu_per_s)}


def test_headline_without_server_status_uses_the_clients_reads():
    k = headline({"app_in": 100, "deliveries": 1000, "io_r": 250, "bytes_r": 10_000}, 1.0, None)
    assert k["send_ops_source"].startswith("client reads") and k["sg_efficiency"] == 4.0
    assert k["fanout"] is None  # no measured message
    empty = headline({}, 1.0, None)
    assert empty["sg_efficiency"] is None and empty["throughput_msgs_s"] == 0


def test_rate_row_of_nothing_has_no_latency():
    row = rate_row({}, 10.0, new_histogram())
    assert row["app_in_s"] == 0 and row["p99"] is None and fmt(row["p99"]) == "-"


# ---------------------------------------------------------------------------- server status, read defensively
def gw(t: float, chats: int, writes: int, **extra) -> dict:
    return {"role": "gateway", "id": 0, "pid": 1, "uptime_s": t, "chats_in": chats, "writes": writes,
            "deliveries": chats * 5, "send_buffer_bytes": 2048, "db_pool": {"size": 4, "in_use": 1, "waits": 0},
            "zmq": {"backlog": 0, "dropped": 0}, "cpu_percent": 30.0, "rss_bytes": 1_000_000, **extra}


def shard(t: float, envelopes: int, peak: int, **extra) -> dict:
    return {"role": "shard", "id": 0, "pid": 2, "uptime_s": t, "envelopes": envelopes, "jobs_peak": peak,
            "zmq": {"backlog": 3}, "cpu_percent": 10.0, "rss_bytes": 500_000, **extra}


def test_server_rates_use_each_process_own_publish_clock():
    prev = Sample(100.0, [gw(10.0, 0, 0, gc={"pause_total_ms": 5.0})], [shard(10.5, 0, 1)])
    # sampled 2 s later, but the shard's figures were published only 1.5 s after its last ones
    last = Sample(102.0, [gw(12.0, 2000, 800, loop_lag_ms=3.5, gc={"pause_total_ms": 7.5})],
                  [shard(12.0, 1500, 40, chatlog={"backlog": 12})])
    row = server_row(prev, [last])
    assert row["job_enq_s"] == 1000 and row["job_exec_s"] == 1000
    assert row["gw_writes_s"] == 400 and row["q_peak"] == 40 and row["zmq_backlog_max"] == 3
    assert row["sendbuf_inuse_bytes"] == row["sendbuf_peak_bytes"] == 2048
    assert row["db_in_use_peak"] == 1 and row["db_pool_size"] == 4 and row["db_waits"] == 0
    assert row["chatlog_backlog_peak"] == 12 and row["loop_lag_ms_peak"] == 3.5
    assert row["cpu_percent"] == 40.0 and row["rss_bytes"] == 1_500_000
    assert row["gc_pause_ms"] == 2.5


def test_missing_and_odd_status_fields_show_as_dashes_never_crash():
    bare_gw = {"role": "gateway", "id": 0}
    odd_shard = {"role": "shard", "id": 1, "jobs_peak": "lots", "chatlog": None, "zmq": 5}
    rows = [server_row(None, []), server_row(None, [Sample(1.0, [bare_gw], [odd_shard], unreachable=2)]),
            server_row(Sample(0.0, [bare_gw]), [Sample(1.0, [bare_gw], [odd_shard])])]
    for row in rows:
        assert row["job_enq_s"] is None and row["q_peak"] is None and row["chatlog_backlog_peak"] is None
        assert {fmt(row[k], k) for k in ("job_enq_s", "sendbuf_inuse_bytes", "loop_lag_ms_peak")} == {"-"}
    assert rows[1]["unreachable"] == 2
    server_table([{"sec": 10, **rows[1]}], rows[2])  # renders
    assert dig({"a": {"b": True}}, "a", "b") is None and dig({"a": {"b": 2.5}}, "a", "b") == 2.5


def test_server_window_takes_the_sample_before_it_as_the_base():
    samples = [Sample(float(t), [gw(float(t), 100 * t, 10 * t)], []) for t in range(10)]
    row = server_window(samples, 2.0, 5.0)
    assert row["samples"] == 3 and row["job_enq_s"] == 100 and row["gw_writes_s"] == 10


def test_render_result_prints_the_seeds_tables_and_red_failures():
    from rich.console import Console

    result = run_aggregator().finish(finals(2, gaps=3), server_writes_per_s=None)
    result["server"] = {"endpoints": [], "rows": [], "total": {}}
    console = Console(record=True, width=220, color_system=None)
    render_result(console, result)
    text = console.export_text()
    for label in ("io r/s", "app out/s", "bc-deliv/s", "p99.9(µs)", "Throughput (app in/s)", "SG efficiency",
                  "<=100us", ">50ms", "FAIL: gaps = 6"):
        assert label in text
