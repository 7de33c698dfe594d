"""`chatctl bench`: the seed's DummyClient load test against a chatcluster, with its KPI tables."""

from __future__ import annotations

import secrets
import sys

import click
from rich.console import Console
from rich.text import Text

from chatcluster.common.config import DEFAULT_HTTP_PORT
from chatcluster.common.options import SHARDS

from .profile import DEFAULT_MIX, PASSWORD, PayloadMix, Profile

EXIT_OK = 0
EXIT_INCORRECT = 1      # a correctness counter is not zero
EXIT_ABORTED = 3        # the run could not be carried out (setup refused, worker died, cluster did not start)
EXIT_INTERRUPTED = 130


def _procs(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("auto or a number of processes") from None
    if not 1 <= n <= 64:
        raise click.BadParameter("between 1 and 64")
    return n


def _mix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        PayloadMix.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--clients", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--rooms", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="clients 0..rooms-1 create them; client i joins room i % rooms")
@click.option("--rps", type=click.FloatRange(0.0, min_open=True), default=10.0, show_default=True,
              help="chat messages per second per client (open loop, own random phase)")
@click.option("--duration", type=click.IntRange(1), default=250, show_default=True, help="measured seconds")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True,
              help="seconds of sending before the measured window")
@click.option("--grace", type=click.FloatRange(0.0), default=3.0, show_default=True,
              help="seconds to wait for late copies after the last send")
@click.option("--payload-mix", "mix", default=DEFAULT_MIX, show_default=True, callback=_mix,
              help="SIZE:WEIGHT or LO-HI:WEIGHT, comma separated (bytes of chat text)")
@click.option("--interval", type=click.IntRange(1), default=10, show_default=True, help="seconds per table row")
@click.option("--host", default="127.0.0.1", show_default=True, help="where the cluster's gateway listens")
@click.option("--port", type=click.IntRange(1, 65535), default=7777, show_default=True,
              help="the gateway's client port (tcp; also where its status endpoints are probed from)")
@click.option("--transport", type=click.Choice(["tcp", "ws", "ws-json"]), default="tcp", show_default=True,
              help="tcp: frames on the client port; ws: the same frames in WebSocket binary messages "
                   "(chatcluster.v1); ws-json: one JSON object per text message (chatcluster.json.v1); both at "
                   "ws://HOST:HTTP_PORT/ws")
@click.option("--http-port", type=click.IntRange(1, 65535), default=DEFAULT_HTTP_PORT, show_default=True,
              help="the gateway's HTTP port, where ws and ws-json connect (with --spawn: the spawned one's)")
@click.option("--tls", is_flag=True,
              help="connect with TLS (tcp: on the client port; ws: wss://); with --spawn, the cluster serves a "
                   "throwaway self-signed certificate that the run trusts")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="with --tls: PEM file of the CAs (or the certificate) to trust [default: the system's]")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="the target cluster's data dir, to find its status endpoints [default: probe port+1, port+2...]")
@click.option("--spawn", is_flag=True, help="start a cluster for the run on free ports (and stop it after)")
@click.option("--shards", type=SHARDS, default="auto", show_default=True,
              help="with --spawn (auto: one per two cores, two from two cores on)")
@click.option("--gateways", type=click.IntRange(1, 64), default=1, show_default=True, help="with --spawn")
@click.option("--spawn-arg", "spawn_args", multiple=True,
              help="extra argument for the spawned `chatctl up` (repeatable), e.g. --spawn-arg=--loop=asyncio")
@click.option("--procs", default="auto", show_default=True,
              help="load-generator processes (auto: 1 below 200 clients and 100k deliveries/s, else 2, at most "
                   "the cores)")
@click.option("--login-concurrency", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="setup requests in flight at once (logins cost the server a scrypt hash each)")
@click.option("--latency-from", type=click.Choice(["send", "schedule"]), default="send", show_default=True,
              help="start latency at the actual send, or at the scheduled time (counts load-generator lag too)")
@click.option("--churn", type=click.FloatRange(0.0), default=0.0, show_default=True, metavar="RATE",
              help="drop this many client connections per second (all processes) while the load runs; each "
                   "client logs in again, resumes its room and sends again what never came back; missed "
                   "messages and duplicates across the resumes make the exit status 1")
@click.option("--seed", type=int, default=None, help="random seed for phases and payloads [default: random]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="write every figure to this file")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="draw throughput and latency percentiles over time to this PNG (needs matplotlib)")
@click.option("--live/--no-live", default=None, help="live table and progress bar [default: when a terminal]")
def bench(clients: int, rooms: int, rps: float, duration: int, warmup: int, grace: float, mix: str, interval: int,
          host: str, port: int, transport: str, http_port: int, tls: bool, ca: str | None,
          data_dir: str | None, spawn: bool, shards: int, gateways: int,
          spawn_args: tuple[str, ...],
          procs: str, login_concurrency: int, latency_from: str, churn: float, seed: int | None, json_path: str | None,
          plot_path: str | None, live: bool | None) -> None:
    """Load-test a cluster with the seed's scenario and print its KPI tables.

    All clients log in; --rooms of them create rooms and the rest join them
    evenly; then every client sends chat at --rps, open loop. Latency is from a
    client's send to that client receiving its own copy. Lost messages, seq gaps,
    reorders, duplicates and missing deliveries are counted: any of them makes the
    exit status 1 (3 if the run could not be carried out). --transport and --tls
    run the same scenario over WebSocket (binary or JSON) and TLS.
    """
    from .report import PlainDisplay, RichDisplay, render_result, write_json, write_plot
    from .runner import BenchOptions, RunAborted, run_bench

    n_procs = _procs(procs)
    if ca and not tls:
        raise click.UsageError("--ca is for --tls")
    if ca and spawn:
        raise click.UsageError("with --spawn --tls the bench makes its own certificate and trusts it: drop --ca")
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--plot needs matplotlib: pip install 'chatcluster[plot]'") from None
    runtag = secrets.token_hex(3)
    profile = Profile(clients=clients, rooms=rooms, rps=rps, duration=duration, warmup=warmup, grace=grace,
                      interval=interval, mix=mix, runtag=runtag,
                      seed=seed if seed is not None else secrets.randbits(32), password=PASSWORD,
                      latency_from=latency_from, churn=churn)
    try:
        profile.validate()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = BenchOptions(profile=profile, host=host, port=port, spawn=spawn, shards=shards, gateways=gateways,
                           spawn_args=spawn_args, data_dir=data_dir, procs=n_procs,
                           login_concurrency=login_concurrency, transport=transport, tls=tls, ca=ca,
                           http_port=http_port)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a log: one table row per line, not wrapped at 80
    use_live = console.is_terminal if live is None else live
    ui = RichDisplay(console) if use_live else PlainDisplay(console)
    try:
        result = run_bench(options, ui)
    except RunAborted as exc:
        ui.close()
        console.print(Text(f"bench aborted: {exc}", style="bold red"))
        sys.exit(EXIT_ABORTED)
    except KeyboardInterrupt:
        ui.close()
        console.print(Text("bench interrupted", style="bold red"))
        sys.exit(EXIT_INTERRUPTED)
    ui.close()
    result["exit_status"] = EXIT_OK if result["ok"] else EXIT_INCORRECT
    render_result(console, result)
    if json_path:
        write_json(json_path, result)
        console.print(f"figures written to {json_path}")
    if plot_path:
        write_plot(plot_path, result)
        console.print(f"plot written to {plot_path}")
    sys.exit(result["exit_status"])
