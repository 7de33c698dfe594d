"""chatctl's operator commands: publish, rooms, room, kick, disconnect, ban, unban, mute, unmute.

Each is one call of the operator API (docs/API.md) made through
chatcluster/operator.py; cli.py adds them to chatctl. An API error is printed
as the API words it, and the exit status is 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from chatcluster.common.config import DEFAULT_DATA_DIR, RUN_FILE, ClusterConfig
from chatcluster.common.options import DURATION
from chatcluster.operator import ApiClient, ApiFailure, api_urls, find_key, said


def _api_options(fn: Callable) -> Callable:
    """Where the cluster is (as for chatctl status), where the key is, and how to print."""
    fn = click.option("--json", "as_json", is_flag=True, help="print the API's JSON result")(fn)
    fn = click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
                      help="the API key [default: $CHATCLUSTER_API_KEY, else the file the cluster's config "
                           "names]")(fn)
    fn = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                      help="cluster config file [default: <data-dir>/run/cluster.json]")(fn)
    return click.option("--data-dir", type=click.Path(file_okay=False), default=DEFAULT_DATA_DIR,
                        show_default=True)(fn)


def _call(options: dict[str, Any], method: str, **fields: Any) -> None:
    """Make one API call and print its result; on an error, print it and exit 1."""
    path = Path(options["config_file"]) if options["config_file"] else Path(options["data_dir"]) / RUN_FILE
    if not path.exists():
        raise click.ClickException(f"no cluster config at {path}: is a cluster running with --data-dir "
                                   f"{options['data_dir']}?")
    try:
        config = ClusterConfig.load(path)
        key = find_key(options["api_key_file"], config)
        result = ApiClient(api_urls(config), key).call(method, **fields)
    except ApiFailure as exc:
        click.secho(f"chatctl {method}: {exc}", fg="red", err=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:  # an unreadable key file or config
        click.secho(f"chatctl {method}: {exc}", fg="red", err=True)
        sys.exit(1)
    if options["as_json"]:
        click.echo(json.dumps(result, indent=2))
        return
    for line in said(method, result):
        click.echo(line)


def _seconds(value: float | None) -> int | None:
    return None if value is None else max(1, round(value))


ROOM = click.IntRange(1)
PLAYER = click.IntRange(1)
REASON = click.option("--reason", default="", help="why (logged, and shown to the player)")


@click.command()
@click.argument("room_id", type=ROOM)
@click.argument("text")
@_api_options
def publish(room_id: int, text: str, **options: Any) -> None:
    """Send a system message to a room (sender 'system'; it takes the room's next seq)."""
    _call(options, "publish", room_id=room_id, text=text)


@click.command()
@_api_options
def rooms(**options: Any) -> None:
    """List every open room of every shard."""
    _call(options, "rooms")


@click.command()
@click.argument("room_id", type=ROOM)
@_api_options
def room(room_id: int, **options: Any) -> None:
    """Show a room's members and the gateway each is on."""
    _call(options, "room", room_id=room_id)


@click.command()
@click.argument("room_id", type=ROOM)
@click.argument("player_id", type=PLAYER)
@REASON
@_api_options
def kick(room_id: int, player_id: int, reason: str, **options: Any) -> None:
    """Remove a player from a room (it gets S_ERROR KICKED and is back in the lobby)."""
    _call(options, "kick", room_id=room_id, player_id=player_id, reason=reason)


@click.command()
@click.argument("player_id", type=PLAYER, required=False)
@click.option("--name", default=None, help="the player's name, instead of its id")
@REASON
@_api_options
def disconnect(player_id: int | None, name: str | None, reason: str, **options: Any) -> None:
    """Close a player's connection, on whichever gateway it is (S_ERROR KICKED first)."""
    if (player_id is None) == (name is None):
        raise click.UsageError("give a PLAYER_ID or --name NAME (one of them)")
    _call(options, "disconnect", player_id=player_id, name=name, reason=reason)


@click.command()
@click.argument("name")
@click.option("--for", "duration", type=DURATION, default=None, help="how long (90s, 10m, 1h, 7d) [default: until "
                                                                      "lifted with chatctl unban]")
@REASON
@_api_options
def ban(name: str, duration: float | None, reason: str, **options: Any) -> None:
    """Ban an account: its session is closed (S_ERROR BANNED) and its logins refused until the ban ends."""
    _call(options, "ban", name=name, seconds=_seconds(duration), reason=reason)


@click.command()
@click.argument("name")
@_api_options
def unban(name: str, **options: Any) -> None:
    """Lift an account's ban."""
    _call(options, "unban", name=name)


@click.command()
@click.argument("player_id", type=PLAYER)
@click.option("--room", "room_id", type=ROOM, default=None, help="only in this room [default: everywhere]")
@click.option("--for", "duration", type=DURATION, required=True, help="how long (90s, 10m, 1h, 7d)")
@REASON
@_api_options
def mute(player_id: int, room_id: int | None, duration: float, reason: str, **options: Any) -> None:
    """Refuse a player's chat (S_ERROR MUTED) in one room or everywhere, for a while."""
    _call(options, "mute", player_id=player_id, room_id=room_id, seconds=_seconds(duration), reason=reason)


@click.command()
@click.argument("player_id", type=PLAYER)
@click.option("--room", "room_id", type=ROOM, default=None, help="only the mute in this room [default: every "
                                                                 "mute of the player]")
@_api_options
def unmute(player_id: int, room_id: int | None, **options: Any) -> None:
    """Lift a player's mute in a room, or all of its mutes."""
    _call(options, "unmute", player_id=player_id, room_id=room_id)


COMMANDS = [publish, rooms, room, kick, disconnect, ban, unban, mute, unmute]
