"""Three hosts on one machine (network namespaces and veth pairs): gateway and clients on A, shards on B and C.

    A 10.77.<n>.1   gateway, clients                 bridge in the root namespace (10.77.<n>.254,
    B 10.77.<n>.2   shard 0                          the test's own view of the network)
    C 10.77.<n>.3   shard 1

The full chat flow crosses real TCP between the hosts; then B's link is cut
(`ip link set ... down`) and restored, and the cluster must say UNAVAILABLE for
B's rooms meanwhile (no hang, no silent loss) and resume afterwards with no
restart. Needs root and a kernel that allows network namespaces; where it
refuses, the test is skipped and says why.
"""

from __future__ import annotations

import ctypes
import functools
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from chatwire import WireClient  # noqa: E402
from waiting import wait_for  # noqa: E402

from chatcluster.common.config import Limits  # noqa: E402
from chatcluster.common.control import fetch_status  # noqa: E402
from chatcluster.common.frames import ErrorCode  # noqa: E402
from chatcluster.common.hashing import owner  # noqa: E402
from chatcluster.proto import chat_pb2 as pb  # noqa: E402

pytestmark = pytest.mark.netns
CLONE_NEWNET = 0x40000000

# Over links that start, are cut and come back, a connection that fails means "not yet".
wait = functools.partial(wait_for, tolerate=(OSError,))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Hosts:
    """The namespaces, bridge and links; torn down whatever happens."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.subnet = f"10.77.{int(tag, 16) % 250}"
        self.bridge = f"ccbr{tag}"
        self.names = {h: f"cc{h}{tag}" for h in "ABC"}
        self.addr = {h: f"{self.subnet}.{i}" for i, h in enumerate("ABC", start=1)}
        self.veth = {h: f"cc{h.lower()}{tag}" for h in "ABC"}  # the root-namespace end of each host's link

    def up(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for h, ns in self.names.items():
            ip("netns", "add", ns)
            ip("link", "add", self.veth[h], "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", self.veth[h], "master", self.bridge)
            ip("link", "set", self.veth[h], "up")
            ip("-n", ns, "addr", "add", f"{self.addr[h]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for h, ns in self.names.items():
            ip("link", "del", self.veth[h], check=False)
            ip("netns", "del", ns, check=False)
        ip("link", "del", self.bridge, check=False)

    def run_in(self, host: str, cmd: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.names[host], *cmd], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def inside(self, host: str, fn: Callable[[], object]) -> object:
        """fn() run by a thread that entered the host's namespace: sockets it opens belong to that host."""
        result: list[object] = []

        def enter() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/var/run/netns/{self.names[host]}") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            result.append(fn())

        thread = threading.Thread(target=enter)
        thread.start()
        thread.join()
        if not result:
            raise RuntimeError(f"could not run inside host {host}")
        return result[0]


def namespaces_allowed() -> str | None:
    """None if we may build hosts here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"ccprobe{secrets.token_hex(2)}"
    result = ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"the kernel refuses network namespaces: {result.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


@pytest.fixture
def hosts():
    why = namespaces_allowed()
    if why:
        pytest.skip(why)
    h = Hosts()
    try:
        h.up()
        yield h
    finally:
        h.down()


CONFIG = """
data_dir = "{data}"
db_url = "sqlite:///{data}/chat.db"
scrypt_n = 1024

[[shards]]
id = 0
endpoint = "tcp://{B}:5600"
control_host = "{B}"
control_port = 7800

[[shards]]
id = 1
endpoint = "tcp://{C}:5600"
control_host = "{C}"
control_port = 7800

[[gateways]]
id = 0
host = "{A}"
port = 7777
control_host = "{A}"
control_port = 7801
"""


def test_gateway_and_shards_on_three_hosts_and_a_cut_link(hosts, tmp_path):
    config = tmp_path / "cluster.toml"
    config.write_text(CONFIG.format(data=tmp_path, **hosts.addr))
    chatctl = [sys.executable, "-m", "chatcluster"]
    subprocess.run([*chatctl, "db", "init", "--config", str(config)], check=True, capture_output=True)
    up = [*chatctl, "up", "--config", str(config), "--role"]
    procs = [
        hosts.run_in("B", [*up, "shard", "--id", "0"], tmp_path / "b.log"),
        hosts.run_in("C", [*up, "shard", "--id", "1"], tmp_path / "c.log"),
        hosts.run_in("A", [*up, "gateway", "--id", "0"], tmp_path / "a.log"),
    ]
    gw_control = (hosts.addr["A"], 7801)
    try:
        for host in "ABC":
            port = 7801 if host == "A" else 7800
            wait(lambda h=host, p=port: fetch_status((hosts.addr[h], p)), 20, f"the process on host {host}")
        wait(lambda: all(s["state"] == "up" for s in fetch_status(gw_control)["shards"].values()), 10,
             "the gateway to hear from both shards")

        # clients on host A; rooms on both shards
        alice, bob = hosts.inside("A", lambda: (WireClient(hosts.addr["A"], 7777), WireClient(hosts.addr["A"], 7777)))
        assert alice.login("alice").success and bob.login("bob").success
        rooms: dict[int, int] = {}
        creators = []
        while len(rooms) < 2:
            c = hosts.inside("A", lambda: WireClient(hosts.addr["A"], 7777))
            assert c.login(f"owner{len(creators)}").success
            c.send(pb.C_CREATE_ROOM_REQ(name=f"room{len(creators)}"))
            room = c.expect(pb.S_CREATE_ROOM_RES).room.room_id
            rooms.setdefault(owner(room, [0, 1]), room)
            creators.append(c)
        on_b, on_c = rooms[0], rooms[1]
        alice.send(pb.C_JOIN_ROOM_REQ(room_id=on_b))
        assert alice.expect(pb.S_JOIN_ROOM_RES).success
        bob.send(pb.C_JOIN_ROOM_REQ(room_id=on_c))
        assert bob.expect(pb.S_JOIN_ROOM_RES).success
        for c in (alice, bob):
            c.chat("across hosts")
            ntf = c.expect(pb.S_ROOM_CHAT_NTF)
            assert ntf.text == "across hosts" and ntf.seq == 1

        # cut B off: its rooms answer UNAVAILABLE at once, C's rooms go on
        ip("link", "set", hosts.veth["B"], "down")
        wait(lambda: fetch_status(gw_control)["shards"]["0"]["state"] == "down", 10, "shard 0 to be marked down")
        alice.chat("into the cut")
        # at once, no hang: well within the request timeout, so not a request that timed out
        err = alice.expect(pb.S_ERROR, timeout=Limits.request_timeout / 2)
        assert err.code == ErrorCode.UNAVAILABLE
        bob.chat("C is fine")
        assert bob.expect(pb.S_ROOM_CHAT_NTF).seq == 2
        # meanwhile shard 0, hearing nothing from the gateway, gives it up and drops its sessions (seen from B itself)
        wait(lambda: hosts.inside("B", lambda: fetch_status((hosts.addr["B"], 7800)))["gateway_timeouts"] >= 1, 15,
             "shard 0 to give the silent gateway up")

        # restore: service resumes without restarting anything
        ip("link", "set", hosts.veth["B"], "up")
        wait(lambda: fetch_status(gw_control)["shards"]["0"]["state"] == "up", 15, "shard 0 to answer again")

        def chat_goes_through() -> bool:
            alice.chat("back")
            while True:
                msg = alice.recv(timeout=3)
                if isinstance(msg, pb.S_ROOM_CHAT_NTF):
                    return msg.text == "back" and msg.seq == 2  # the room's seq goes on where it was
                # a notice that the room was restored (if B dropped us while cut off), or a refusal meanwhile
                assert isinstance(msg, pb.S_ERROR) and msg.code == ErrorCode.UNAVAILABLE, msg
                if "not delivered" in msg.message or "unavailable" in msg.message:
                    return False

        wait(chat_goes_through, 15, "chat in B's room to go through again")
        # having given the gateway up while cut off, shard 0 took its rooms back after (its /status lags up to 1 s)
        wait(lambda: fetch_status((hosts.addr["B"], 7800))["rooms_rebuilt"], 5, "shard 0 to report the rebuild")
        assert all(p.poll() is None for p in procs), "a process exited"
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 15)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()
