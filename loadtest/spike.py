"""A login spike: N clients connect, then all send C_LOGIN_REQ at once.

    python -m chatcluster.loadtest.spike --port 7777 --data-dir ./chatcluster-data [--clients 500]

Prints how long the spike took, per-login latency, how responsive the
gateway stayed meanwhile (a separate, already logged-in client pings it
every 50 ms), and the gateway's own figures: DB pool acquire waits, the DB
and hash thread pools' queue waits, loop lag. Run it twice with the same
--tag to see new accounts (register: hash + insert) and returning ones
(lookup + verify).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from chatcluster.common.config import RUN_FILE, ClusterConfig
from chatcluster.common.control import fetch_status
from chatcluster.common.frames import MAX_FRAME, SERVER_IDS, FrameDecoder, decode_body, encode
from chatcluster.proto import chat_pb2 as pb


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.decoder = FrameDecoder(MAX_FRAME, SERVER_IDS)
        self.replies: asyncio.Queue = asyncio.Queue()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.decoder.feed(data)
        for msg_id, body in self.decoder.frames():
            self.replies.put_nowait(decode_body(msg_id, body))

    async def ask(self, message, answer_type):
        self.transport.write(encode(message))
        while True:
            reply = await self.replies.get()
            if isinstance(reply, answer_type):
                return reply


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def spike(host: str, port: int, clients: int, tag: str, control: tuple[str, int] | None) -> dict:
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(Client, host, port))[1] for _ in range(clients)]
    _, pinger = await loop.create_connection(Client, host, port)
    await pinger.ask(pb.C_LOGIN_REQ(name=f"spike-pinger-{tag}", password="pw"), pb.S_LOGIN_RES)
    rtts: list[float] = []
    stop = asyncio.Event()

    async def ping() -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            await pinger.ask(pb.C_PING(client_time_us=1), pb.S_PONG)
            rtts.append(time.perf_counter() - sent)
            await asyncio.sleep(0.05)

    async def login(i: int, c: Client) -> tuple[bool, float]:
        sent = time.perf_counter()
        res = await c.ask(pb.C_LOGIN_REQ(name=f"spike{i}-{tag}", password="pw"), pb.S_LOGIN_RES)
        return res.success, time.perf_counter() - sent

    pinging = asyncio.create_task(ping())
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    results = await asyncio.gather(*(login(i, c) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - started
    stop.set()
    await pinging
    for c in (*conns, pinger):
        c.transport.close()
    lat = sorted(t for _, t in results)
    rtts.sort()
    report = {
        "clients": clients, "ok": sum(ok for ok, _ in results), "seconds": elapsed,
        "login_p50_ms": percentile(lat, 0.5) * 1000, "login_p99_ms": percentile(lat, 0.99) * 1000,
        "login_max_ms": lat[-1] * 1000, "ping_n": len(rtts), "ping_p50_ms": percentile(rtts, 0.5) * 1000,
        "ping_max_ms": rtts[-1] * 1000,
    }
    if control is not None:
        await asyncio.sleep(1.2)  # the next /status snapshot
        status = fetch_status(control)
        report["gateway"] = {k: status.get(k) for k in ("db_pool", "db_threads", "hash_threads", "loop_lag_max_ms",
                                                          "logins_refused_busy")}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7777)
    parser.add_argument("--data-dir", help="the cluster's data dir, to read the gateway's /status")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--tag", default=str(int(time.time())), help="account names are spike<i>-<tag>")
    args = parser.parse_args()
    control = None
    if args.data_dir:
        gateway = ClusterConfig.load(Path(args.data_dir) / RUN_FILE).gateways[0]
        control = (gateway.control_host, gateway.control_port)
    print(json.dumps(asyncio.run(spike(args.host, args.port, args.clients, args.tag, control)), indent=2))


if __name__ == "__main__":
    main()
