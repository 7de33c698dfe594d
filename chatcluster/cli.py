"""chatctl: run, watch and use a chatcluster."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from chatcluster import __version__
from chatcluster.common.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_HTTP_PORT,
    DEFAULT_PORT,
    RUN_FILE,
    ClusterConfig,
    Limits,
    auto_shards,
)
from chatcluster.common.options import DURATION, SHARDS
from chatcluster.loadtest.cli import bench
from chatcluster.opscli import COMMANDS as OPERATOR_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="chatctl")
def main() -> None:
    """Run and use a chatcluster: a sharded real-time chat server."""


# ---------------------------------------------------------------------------- up
@main.command()
@click.option("--shards", type=SHARDS, default="auto", show_default=True,
              help=f"shard processes (auto: one per two cores, two from two cores on; here {auto_shards()})")
@click.option("--gateways", type=click.IntRange(1, 64), default=1, show_default=True,
              help="gateway processes sharing the client port (Linux SO_REUSEPORT spreads connections)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address clients connect to")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--http-port", type=click.IntRange(0, 65535), default=DEFAULT_HTTP_PORT, show_default=True,
              help="the web chat page (/) and WebSocket (/ws) on --host; 0: none")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate chain: serve TLS on the client port and the HTTP port (wss://)")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the certificate's PEM private key file")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
              help="a web page Origin (https://app.example.com) whose scripts may open /ws, besides the "
                   "server's own page; '*' allows any; repeatable")
@click.option("--auth", type=click.Choice(["password", "token", "both"]), default="both", show_default=True,
              help="which logins to take: names and passwords, signed tokens (--token-key), or both")
@click.option("--token-key", "token_key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="token login's key file: the HS256 shared secret, or the RS256/ES256 public key (PEM)")
@click.option("--token-alg", type=click.Choice(["HS256", "RS256", "ES256"]), default="HS256", show_default=True,
              help="the one algorithm login tokens must be signed with")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="turn on the operator HTTP API (POST /api/<method> on each gateway's control port, "
                   "docs/API.md) with the key in this file; or set $CHATCLUSTER_API_KEY; neither: the API is off")
@click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR, show_default=True,
              help="database, logs and run files")
@click.option("--db", "db_url", default=None, help="database URL [default: sqlite:///<data-dir>/chat.db]")
@click.option("--registration", type=click.Choice(["open", "closed"]), default="open", show_default=True,
              help="closed: unknown names cannot log in (no self-registration)")
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto", show_default=True,
              help="gateway event loop (auto: uvloop; asyncio's IOCP proactor on Windows)")
@click.option("--zmq-bridge", type=click.Choice(["auto", "reader", "thread"]), default="auto", show_default=True,
              help="how ZeroMQ joins the gateway's loop (auto: reader; thread where the loop has no add_reader)")
@click.option("--writer", type=click.Choice(["auto", "thread", "loop"]), default="auto", show_default=True,
              help="who writes to clients: the event loop (auto), or a writer thread that sends without the "
                   "GIL (see the README's Performance section)")
@click.option("--control-port", type=click.IntRange(1, 65535), default=None,
              help="first control (HTTP status) port [default: port+1]; one per process")
@click.option("--max-members", type=click.IntRange(2, 1000), default=Limits.max_members, show_default=True,
              help="members per room (so a member list fits one frame)")
@click.option("--chat-log/--no-chat-log", default=True, show_default=True,
              help="shards log every chat to <data-dir>/chatlog and the database")
@click.option("--limit", "limit_items", multiple=True, metavar="NAME=VALUE",
              help="set any limit (repeatable), e.g. --limit chat_rate=20 --limit write_buffer=1048576; "
                   "see the README's Limits table")
@click.option("--scrypt-n", type=int, default=1 << 14, show_default=True, hidden=True,
              help="scrypt cost of new password hashes (a power of two)")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="cluster config file (.toml or .json) instead of the single-host flags")
@click.option("--role", type=click.Choice(["shard", "gateway"]), default=None,
              help="run just this one process of the --config cluster, in the foreground")
@click.option("--id", "node_id", default=None,
              help="which shard or gateway of the config (with --role); for a gateway, 'auto' runs one more "
                   "replica of the first gateway entry, named after this host (a Kubernetes Deployment)")
@click.option("-v", "--verbose", is_flag=True, help="log every request, not just lifecycle and errors")
def up(shards: int, gateways: int, host: str, port: int, http_port: int, tls_cert: str | None, tls_key: str | None,
       allow_origins: tuple[str, ...], auth: str, token_key: str | None, token_alg: str, api_key_file: str | None,
       data_dir: str, db_url: str | None, registration: str,
       loop: str,
       zmq_bridge: str, writer: str, control_port: int | None, max_members: int, chat_log: bool,
       limit_items: tuple[str, ...],
       scrypt_n: int, config_file: str | None,
       role: str | None, node_id: str | None, verbose: bool) -> None:
    """Start the cluster (gateways and shards) and keep it running until Ctrl-C."""
    if role is not None:
        if config_file is None or node_id is None:
            raise click.UsageError("--role needs --config and --id")
        sys.exit(_run_node(Path(config_file), role, node_id, verbose))
    if config_file is not None:
        config = ClusterConfig.load(Path(config_file))
        config.verbose = config.verbose or verbose
    else:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise click.BadParameter("must be a power of two", param_hint="--scrypt-n")
        try:
            config = ClusterConfig.single_host(
                shards=shards, gateways=gateways, host=host, port=port, http_port=http_port, data_dir=data_dir,
                db_url=db_url, tls_cert=str(Path(tls_cert).resolve()) if tls_cert else "",
                tls_key=str(Path(tls_key).resolve()) if tls_key else "", allow_origins=list(allow_origins),
                auth=auth, token_key_file=str(Path(token_key).resolve()) if token_key else "", token_alg=token_alg,
                api_key_file=str(Path(api_key_file).resolve()) if api_key_file else "",
                control_port=control_port, registration=registration, loop=loop, zmq_bridge=zmq_bridge, writer=writer,
                verbose=verbose, scrypt_n=scrypt_n, chat_log=chat_log, limits=_limits(max_members, limit_items),
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    sys.exit(_run_cluster(config))


def _limits(max_members: int, items: tuple[str, ...]) -> Limits:
    """Limits from --max-members and --limit NAME=VALUE pairs, each checked against the Limits fields."""
    fields = {f.name: f.type for f in dataclasses.fields(Limits)}
    values: dict[str, float | int] = {"max_members": max_members}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE with NAME one of {', '.join(fields)}",
                                     param_hint="--limit")
        try:
            values[name] = int(raw) if fields[name] in (int, "int") else float(raw)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {raw!r} is not a number", param_hint="--limit") from None
    return Limits(**values)


def _run_node(config_file: Path, role: str, node_id: str, verbose: bool) -> int:
    from chatcluster.common import procutil
    from chatcluster.supervisor import SUPERVISED_ENV

    config = ClusterConfig.load(config_file)
    config.verbose = config.verbose or verbose
    supervisor = os.environ.get(SUPERVISED_ENV, "")
    if supervisor:
        procutil.die_with_parent(int(supervisor) if supervisor.isdigit() else None)
    if role == "gateway" and node_id == "auto":
        import socket

        from chatcluster.gateway.server import run_gateway

        return run_gateway(config, config.gateways[0].id, node=f"gw-{socket.gethostname()}")
    try:
        number = int(node_id)
    except ValueError:
        raise click.BadParameter(f"{node_id!r} is not a number", param_hint="--id") from None
    if role == "shard":
        from chatcluster.shards.worker import run_shard

        return run_shard(config, number)
    from chatcluster.gateway.server import run_gateway

    return run_gateway(config, number)


def _run_cluster(config: ClusterConfig) -> int:
    from chatcluster.common import logs
    from chatcluster.common.storage import SchemaError, open_database
    from chatcluster.gateway.api import load_api_key
    from chatcluster.shards.rooms import check_limits
    from chatcluster.supervisor import Supervisor

    config.validate()
    check_limits(config.limits)
    try:  # a key that is missing or too short stops the start here, not in every gateway's log
        load_api_key(config)
    except ValueError as exc:
        click.secho(f"chatctl up: {exc}", fg="red", err=True)
        return 2
    logs.setup("sup", config.verbose, config.log_file("supervisor"))
    lock = _lock_data_dir(config.data_path)
    if lock is None:
        click.secho(f"chatctl up: another cluster is running with data dir {config.data_dir}; "
                    "stop it first or use another --data-dir", fg="red", err=True)
        return 2
    run_file = config.data_path / RUN_FILE
    config.save(run_file)
    try:  # create the schema once, before any child races to do it
        open_database(config.db_url, 1, config.scrypt_n).close()
    except (SchemaError, ValueError, OSError) as exc:
        click.secho(f"chatctl up: database {config.db_url}: {exc}", fg="red", err=True)
        return 2
    supervisor = Supervisor(config, run_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.request_stop())
    supervisor.start()
    not_ready = supervisor.wait_ready()
    if supervisor.stopping:
        supervisor.stop()
        return 0
    if not_ready:
        names = ", ".join(c.name for c in not_ready)
        click.secho(f"chatctl up: {names} did not start; see the log lines above and "
                    f"{config.data_path / 'logs'}", fg="red", err=True)
        supervisor.stop()
        return 1
    _print_up(config, supervisor.pids())
    supervisor.run()
    click.echo("chatctl up: stopping...", err=True)
    started = time.monotonic()
    supervisor.stop()
    click.echo(f"chatctl up: stopped in {time.monotonic() - started:.1f} s", err=True)
    return 0


def _lock_data_dir(data_dir: Path):
    """An exclusive lock on the data dir for as long as this process lives; None if someone holds it."""
    path = data_dir / "run" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open on purpose until exit
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the port check still catches a second cluster
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _print_up(config: ClusterConfig, pids: dict[str, int]) -> None:
    gw = ", ".join(f"{g.host}:{g.port}" for g in config.gateways)
    click.secho(f"chatcluster {__version__} is up", fg="green", bold=True)
    click.echo(f"  clients connect to  {gw}" + (" (TLS)" if config.tls else ""))
    scheme = "https" if config.tls else "http"
    pages = sorted({f"{scheme}://{g.host}:{g.http_port}/" for g in config.gateways if g.http_port})
    click.echo(f"  web page, WebSocket {', '.join(pages) + ' (/ws)' if pages else 'off (--http-port 0)'}")
    if config.auth != "password" and config.token_key_file:
        click.echo(f"  logins              {config.auth} (tokens {config.token_alg})")
    click.echo(f"  processes           {len(config.gateways)} gateway(s), {len(config.shards)} shard(s): "
               + ", ".join(f"{name} pid {pid}" for name, pid in pids.items()))
    click.echo(f"  database            {config.db_url}")
    click.echo(f"  data dir            {config.data_dir}")
    click.echo(f"  status              chatctl status --data-dir {config.data_dir}")
    click.echo(f"  operator API        {_api_line(config)}")
    click.echo("  chat                chatctl client --port " + str(config.gateways[0].port))
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()


def _api_line(config: ClusterConfig) -> str:
    """Where the operator API is and where its key comes from (never the key), or why it is off."""
    from chatcluster.gateway.api import KEY_ENV

    if not config.api_key_file and not os.environ.get(KEY_ENV, "").strip():
        return f"off (start with --api-key-file FILE or ${KEY_ENV} to turn it on)"
    g = config.gateways[0]
    source = config.api_key_file or f"${KEY_ENV}"
    return f"http://{g.control_host}:{g.control_port}/api/<method> (key from {source}; docs/API.md)"


# ---------------------------------------------------------------------------- client
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--name", default=None, help="player name (asked for when not given)")
def client(host: str, port: int, name: str | None) -> None:
    """Chat from the terminal: log in, create or join a room, talk."""
    from chatcluster.console import run

    sys.exit(run(host, port, name))


# ---------------------------------------------------------------------------- status
@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR, show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="cluster config file [default: <data-dir>/run/cluster.json]")
@click.option("--json", "as_json", is_flag=True, help="print JSON for machines")
@click.option("--watch", is_flag=True, help="refresh in place every second until Ctrl-C")
def status(data_dir: str, config_file: str | None, as_json: bool, watch: bool) -> None:
    """Ask every gateway and shard of a running cluster for its figures (exit 1 if one is down).

    Each process also serves them to Prometheus at the /metrics URL of its control port.
    """
    from chatcluster import status as status_view

    path = Path(config_file) if config_file else Path(data_dir) / RUN_FILE
    if not path.exists():
        raise click.ClickException(f"no cluster config at {path}: is a cluster running with --data-dir {data_dir}?")
    sys.exit(status_view.run(path, as_json, watch))


# ---------------------------------------------------------------------------- db, history
def _database_url(data_dir: str, db_url: str | None, config_file: str | None = None) -> str:
    """--db if given, else --config's, else the running cluster's (its run file), else the default SQLite file."""
    if db_url:
        return db_url
    if config_file:
        return ClusterConfig.load(Path(config_file)).db_url
    run_file = Path(data_dir) / RUN_FILE
    if run_file.exists():
        return ClusterConfig.load(run_file).db_url
    return f"sqlite:///{(Path(data_dir) / 'chat.db').resolve()}"


def _db_options(fn):
    fn = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                      help="take the database from this cluster config")(fn)
    fn = click.option("--db", "db_url", default=None,
                      help="database URL [default: the cluster's in --data-dir, or its SQLite file]")(fn)
    return click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR,
                        show_default=True)(fn)


@main.group()
def db() -> None:
    """Create, migrate and check the database."""


@db.command("init")
@_db_options
def db_init(data_dir: str, db_url: str | None, config_file: str | None) -> None:
    """Create the schema, or migrate an older one to this version."""
    from chatcluster.common.storage import Database

    database = Database(_database_url(data_dir, db_url, config_file), pool_size=1)
    try:
        before = database.schema_version()
        after = database.migrate()
    except Exception as exc:
        raise click.ClickException(f"{database.describe()}: {exc}") from exc
    finally:
        database.close()
    what = "created" if before is None else ("migrated" if before != after else "already current")
    click.echo(f"{database.describe()}: schema v{after} ({what})")


@db.command("check")
@_db_options
@click.option("--json", "as_json", is_flag=True)
def db_check(data_dir: str, db_url: str | None, config_file: str | None, as_json: bool) -> None:
    """Connect, and report the schema version and row counts; exit 1 if unusable."""
    from chatcluster.common.storage import Database

    database = Database(_database_url(data_dir, db_url, config_file), pool_size=1)
    try:
        report = database.check()
    except Exception as exc:
        report = {"database": database.describe(), "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        database.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            click.echo(f"{key:18} {value}")
    if not report["ok"]:
        sys.exit(1)


@main.command()
@click.argument("room_id", type=click.IntRange(1))
@click.option("--last", type=click.IntRange(1), default=50, show_default=True, help="how many messages")
@_db_options
def history(room_id: int, last: int, data_dir: str, db_url: str | None, config_file: str | None) -> None:
    """Print a room's logged messages, oldest first."""
    from datetime import UTC, datetime

    from chatcluster.common.storage import Database

    database = Database(_database_url(data_dir, db_url, config_file), pool_size=1)
    try:
        rows = database.history(room_id, last)
    except Exception as exc:
        raise click.ClickException(f"{database.describe()}: {exc}") from exc
    finally:
        database.close()
    if not rows:
        click.echo(f"room {room_id}: no logged messages")
        return
    for seq, _sender_id, name, text, time_us in rows:
        when = datetime.fromtimestamp(time_us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        click.echo(f"[{when}] #{seq} {name}: {text}")


# ---------------------------------------------------------------------------- bench (lives in loadtest/)
# ---------------------------------------------------------------------------- tokens
@main.command()
@click.argument("sub")
@click.option("--name", default="", help="the display name the token carries (default: SUB)")
@click.option("--ttl", type=DURATION, default="1h", show_default=True, help="how long it is valid: 90s, 10m, 1h, 7d")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the signing key: the HS256 secret, or the RS256/ES256 private key (PEM) "
                   "[default: the cluster's token key, for HS256]")
@click.option("--alg", type=click.Choice(["HS256", "RS256", "ES256"]), default=None,
              help="[default: the cluster's token_alg]")
@click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR, show_default=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="cluster config file [default: <data-dir>/run/cluster.json]")
def token(sub: str, name: str, ttl: float, key_file: str | None, alg: str | None, data_dir: str,
          config_file: str | None) -> None:
    """Print a login token for the application user SUB, signed with the cluster's key.

    What an application's backend does for its signed-in users (docs/PROTOCOL.md, Token login), for
    tests, tools and operators. The token is the only output, for use in a script.
    """
    from chatcluster.common.tokens import sign

    path = Path(config_file) if config_file else Path(data_dir) / RUN_FILE
    config = ClusterConfig.load(path) if path.exists() else None
    alg = alg or (config.token_alg if config else "HS256")
    key_file = key_file or (config.token_key_file if config else None)
    if not key_file:
        raise click.UsageError("no key: give --key, or run it where the cluster's config names a token key")
    if alg != "HS256" and config is not None and key_file == config.token_key_file:
        raise click.UsageError(f"{alg} tokens are signed with the private key: give it with --key")
    try:
        click.echo(sign(sub, Path(key_file).read_bytes(), alg, ttl, name))
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"cannot sign with {key_file} as {alg}: {exc}") from None


main.add_command(bench)

# ---------------------------------------------------------------------------- operators (opscli.py, docs/API.md)
for _command in OPERATOR_COMMANDS:
    main.add_command(_command)

