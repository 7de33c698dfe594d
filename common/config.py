"""The cluster's shape and limits: one object every process is started from.

`chatctl up --shards N` builds a single-host ClusterConfig, writes it to
`<data-dir>/run/cluster.json` and starts each process with
`chatctl up --config <that file> --role shard|gateway --id K`, the same way an
operator starts one process of a multi-host cluster. `chatctl status` reads
the same file to find every process's control port.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 7777
DEFAULT_HTTP_PORT = 8080  # each gateway's HTTP port: the web page and WebSocket /ws (0: none)
DEFAULT_DATA_DIR = "./chatcluster-data"
RUN_FILE = "run/cluster.json"
SUN_PATH_MAX = 100  # AF_UNIX paths must stay under ~107 bytes; keep a margin


def auto_shards(cores: int | None = None) -> int:
    """Shards for one host: one per two cores, but two where there are two cores or more.

    The gateway needs about as much CPU as the shards together (its socket
    writes are most of a chat's cost), and every extra shard process adds
    wake-ups and ZeroMQ sends per message, so more shards than that cost CPU
    for nothing. On two cores, two shards sustain the most small-room traffic
    (one shard is a little cheaper per message but saturates sooner; four are
    dearer and no faster): docs/PERFORMANCE.md, 2026-12-04.
    """
    cores = cores if cores is not None else os.cpu_count() or 2
    return min(cores, max(2, cores // 2))


@dataclass
class Limits:
    """Every bound a client can run into. Each is counted where it bites."""

    max_frame: int = 8192           # bytes in a client frame (PROTOCOL.md); also frames.MAX_CLIENT_FRAME
    max_text: int = 4096            # UTF-8 bytes of chat text (PROTOCOL.md)
    max_name: int = 32              # UTF-8 bytes of a player name
    max_password: int = 1024        # UTF-8 bytes of a password
    max_room_name: int = 64         # UTF-8 bytes of a room name
    max_members: int = 1000         # per room, so S_JOIN_ROOM_RES always fits one frame
    max_rooms: int = 100_000        # per shard
    max_connections: int = 50_000   # per gateway
    login_timeout: float = 15.0     # seconds a new connection has to send C_LOGIN_REQ
    chat_rate: float = 500.0        # requests a second per session (token bucket), chats included ...
    chat_burst: int = 1000          # ... with this many saved up
    flood_after: int = 1000         # requests refused in a row for rate before the connection is dropped
    login_failures_per_name: int = 5      # failed logins before the name is locked (1 s, doubling to 5 min)
    login_failures_per_address: int = 20  # the same per client address
    write_buffer: int = 4 << 20     # bytes queued to one client before it is dropped as a slow consumer
    max_logins_in_flight: int = 2000  # logins waiting for the database or a password hash, per gateway
    chat_log_backlog: int = 200_000  # messages a shard holds for the database while it is down
    request_timeout: float = 5.0    # seconds a gateway waits for a shard's answer
    heartbeat: float = 1.0          # seconds between a gateway's heartbeats to each shard
    shard_timeout: float = 3.0      # a shard silent this long is down: its rooms answer UNAVAILABLE
    gateway_timeout: float = 5.0    # a gateway silent this long is gone: shards drop its sessions
    list_timeout: float = 1.0       # seconds a room list waits for every shard
    shard_wake_gap: float = 0.002   # seconds a shard lets pass between wake-ups, so each carries more chats
    # History (PROTOCOL.md 1.1): what a room keeps to replay, and for how long an emptied room can be resumed.
    history_messages: int = 100     # a room keeps at least its last this many messages ...
    history_age: float = 600.0      # ... and at least those of the last this many seconds ...
    history_bytes: int = 128 << 20  # ... within this many bytes per shard: past it, the oldest of any room go first
    history_replay: int = 100       # the most messages one join's `history` or one history page sends
    history_grace: float = 120.0    # seconds a room whose last member left stays resumable (unlisted)
    ws_max_message: int = 65536     # bytes in one WebSocket message from a client (whole frames, or one JSON object)
    ws_handshake_timeout: float = 10.0  # seconds an HTTP connection has to finish its request / handshake
    ws_ping_interval: float = 20.0  # seconds of silence on a WebSocket before the server pings it ...
    ws_ping_timeout: float = 20.0   # ... and how long the pong may take before the connection is closed
    api_max_body: int = 65536       # bytes in one operator API request's body (larger: 413)
    api_rate: float = 20.0          # operator API calls a second per gateway (token bucket; over it: 429) ...
    api_burst: int = 50             # ... with this many saved up
    token_leeway: float = 30.0      # seconds a login token's exp may lie behind our clock (clocks differ)


@dataclass
class ShardSpec:
    id: int
    endpoint: str             # where gateways reach the shard: ipc://path or tcp://host:port
    control_port: int
    control_host: str = "127.0.0.1"  # where `chatctl status` and probes reach its control endpoint
    bind: str = ""            # what the shard binds, if not `endpoint` (e.g. tcp://*:5600 behind a DNS name)
    control_bind: str = ""    # the control endpoint's bind address, if not control_host (e.g. 0.0.0.0)

    @property
    def bind_endpoint(self) -> str:
        return self.bind or self.endpoint

    @property
    def control_bind_host(self) -> str:
        return self.control_bind or self.control_host


@dataclass
class GatewaySpec:
    id: int
    host: str                 # the client listen address
    port: int
    control_port: int
    control_host: str = "127.0.0.1"
    control_bind: str = ""
    http_port: int = DEFAULT_HTTP_PORT  # the web page and WebSocket /ws, on `host`; 0: no HTTP endpoint

    @property
    def control_bind_host(self) -> str:
        return self.control_bind or self.control_host


@dataclass
class ClusterConfig:
    shards: list[ShardSpec]
    gateways: list[GatewaySpec]
    data_dir: str
    db_url: str
    registration: str = "open"          # open | closed
    loop: str = "auto"                  # auto | uvloop | asyncio
    zmq_bridge: str = "auto"            # auto | reader | thread (see common/zmqbridge.py)
    writer: str = "auto"                # auto (= loop) | thread | loop: who writes to clients (see gateway/outlets.py)
    verbose: bool = False
    scrypt_n: int = 1 << 14
    db_pool_size: int = 4
    chat_log: bool = True               # each shard logs every chat to a file and the database
    tls_cert: str = ""                  # PEM certificate chain: TLS on the client port and the HTTP port
    tls_key: str = ""                   # its PEM private key (a file path; the key itself is never in the config)
    allow_origins: list[str] = field(default_factory=list)  # WebSocket Origins besides the page's own; "*": any
    auth: str = "both"                  # password | token | both: which logins the gateways take
    token_key_file: str = ""            # token login's key: HS256 secret or RS256/ES256 public key (PEM), a path
    token_alg: str = "HS256"            # HS256 | RS256 | ES256: the one algorithm tokens must be signed with
    api_key_file: str = ""              # the operator API's key (a path; the key itself is never in the config);
                                        # none here and no $CHATCLUSTER_API_KEY: the API is off
    limits: Limits = field(default_factory=Limits)

    # ---- derived places -------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def log_file(self, tag: str) -> Path:
        return self.data_path / "logs" / f"{tag}.log"

    def chat_log_file(self, shard_id: int) -> Path:
        return self.data_path / "chatlog" / f"shard-{shard_id}.log"

    @property
    def shard_ids(self) -> list[int]:
        return [s.id for s in self.shards]

    def shard(self, shard_id: int) -> ShardSpec:
        for spec in self.shards:
            if spec.id == shard_id:
                return spec
        raise KeyError(f"no shard with id {shard_id} in the cluster config")

    def gateway(self, gateway_id: int) -> GatewaySpec:
        for spec in self.gateways:
            if spec.id == gateway_id:
                return spec
        raise KeyError(f"no gateway with id {gateway_id} in the cluster config")

    # ---- building -------------------------------------------------------
    @classmethod
    def single_host(
        cls,
        *,
        shards: int = 4,
        gateways: int = 1,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        http_port: int = DEFAULT_HTTP_PORT,
        data_dir: str = DEFAULT_DATA_DIR,
        db_url: str | None = None,
        control_port: int | None = None,
        **options: object,
    ) -> ClusterConfig:
        """M gateways (sharing one port) and N shards on this machine, over ipc:// (tcp:// on Windows).

        Control ports: gateway i on base+i, shard k on base+M+k (base: port+1). The gateways share
        the client port and the HTTP port, as they share the client port (SO_REUSEPORT).
        """
        if shards < 1 or gateways < 1:
            raise ValueError("a cluster needs at least one shard and one gateway")
        if gateways > 1 and not sys.platform.startswith("linux"):
            raise ValueError("several gateways on one port need Linux's SO_REUSEPORT; run one gateway per port")
        data = Path(data_dir).resolve()
        base = control_port if control_port is not None else port + 1
        ipc_dir = _ipc_dir(data)
        shard_specs = []
        for k in range(shards):
            if ipc_dir is None:
                endpoint = f"tcp://127.0.0.1:{base + gateways + shards + k}"
            else:
                endpoint = f"ipc://{ipc_dir / f'shard-{k}.sock'}"
            shard_specs.append(ShardSpec(id=k, endpoint=endpoint, control_port=base + gateways + k))
        gateway_specs = [GatewaySpec(id=i, host=host, port=port, control_port=base + i, http_port=http_port)
                         for i in range(gateways)]
        return cls(
            shards=shard_specs,
            gateways=gateway_specs,
            data_dir=str(data),
            db_url=db_url or f"sqlite:///{data / 'chat.db'}",
            **options,  # type: ignore[arg-type]
        )

    # ---- files ----------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> ClusterConfig:
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown cluster config keys: {', '.join(sorted(unknown))}")
        raw["shards"] = [ShardSpec(**s) for s in raw.get("shards", [])]
        raw["gateways"] = [GatewaySpec(**g) for g in raw.get("gateways", [])]
        raw["limits"] = Limits(**raw.get("limits", {}))
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        if not self.shards:
            raise ValueError("the cluster config lists no shards")
        if len(set(self.shard_ids)) != len(self.shards):
            raise ValueError("shard ids must be unique")
        if len({g.id for g in self.gateways}) != len(self.gateways):
            raise ValueError("gateway ids must be unique")
        if self.registration not in ("open", "closed"):
            raise ValueError("registration must be 'open' or 'closed'")
        if self.loop not in ("auto", "uvloop", "asyncio"):
            raise ValueError("loop must be auto, uvloop or asyncio")
        if self.zmq_bridge not in ("auto", "reader", "thread"):
            raise ValueError("zmq_bridge must be auto, reader or thread")
        if self.writer not in ("auto", "thread", "loop"):
            raise ValueError("writer must be auto, thread or loop")
        if self.auth not in ("password", "token", "both"):
            raise ValueError("auth must be password, token or both")
        if self.auth == "token" and not self.token_key_file:
            raise ValueError("auth = token needs token_key_file")
        if self.token_alg not in ("HS256", "RS256", "ES256"):
            raise ValueError("token_alg must be HS256, RS256 or ES256")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("TLS needs both tls_cert and tls_key")
        if self.tls_cert and self.writer == "thread":
            raise ValueError("the writer thread sends plain bytes to the socket; with TLS use writer auto or loop")

    @property
    def auth_tokens(self) -> bool:
        """Whether token logins are taken (a key is configured and auth allows them)."""
        return bool(self.token_key_file) and self.auth != "password"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        """A .json file (as `chatctl up` writes) or a .toml file (as operators write)."""
        text = Path(path).read_text(encoding="utf-8")
        raw = tomllib.loads(text) if str(path).endswith(".toml") else json.loads(text)
        return cls.from_dict(raw)


def _ipc_dir(data_dir: Path) -> Path | None:
    """Where the shards' ipc sockets live, or None where ipc:// is not an option."""
    if sys.platform == "win32":
        return None
    run = data_dir / "run"
    if len(str(run / "shard-999.sock")) <= SUN_PATH_MAX:
        return run
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"chatcluster-{digest}"
