"""One bench client's protocol logic, without a socket (sans-I/O).

BenchClient turns what the server sends into counters and latencies, and
makes what the client sends. The asyncio adapters (protocols.py) only move
bytes between it and a transport, so everything a run claims can be tested
by feeding it frames. Two wire formats: frames (TCP, and WebSocket binary
messages that carry the same frames), or one JSON object per message (the
WebSocket subprotocol chatcluster.json.v1, `json=True`), counted alike.

Under churn (`churn=True`, `chatctl bench --churn`) a client also keeps
what a resume needs: the room's epoch, the frame of every message whose own
copy has not come back (sent with idempotency_key = client_msg_id), and,
after the adapter dropped its connection and logged in again, the resume's
bookkeeping: the answer (recovered or not, and whether a false was
legitimate), the replay up to head_seq, then the messages to send again,
and the echoes those may bring (PROTOCOL.md 1.1: Resume after a reconnect,
Sending again without duplicates).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf.message import DecodeError, Message
from hdrh.histogram import HdrHistogram

from chatcluster.common.frames import (
    HEADER_SIZE,
    MAX_FRAME,
    SERVER_IDS,
    ErrorCode,
    MsgId,
    ProtocolError,
    decode_body,
    encode,
)
from chatcluster.proto import chat_pb2

from . import wsjson
from .accounting import LAT_HIGH_US, LAT_LOW_US, Counters, SeqCheck
from .schedule import msg_id

_NTF = int(MsgId.S_ROOM_CHAT_NTF)
_JOIN_NTF = int(MsgId.S_JOIN_ROOM_NTF)
_LEAVE_NTF = int(MsgId.S_LEAVE_ROOM_NTF)
_ERROR = int(MsgId.S_ERROR)
_JOIN_RES = int(MsgId.S_JOIN_ROOM_RES)
#: Replies a setup step waits for (one request at a time per client).
SETUP_REPLIES = frozenset({int(MsgId.S_LOGIN_RES), int(MsgId.S_CREATE_ROOM_RES), int(MsgId.S_JOIN_ROOM_RES),
                           _ERROR})
MAX_ERROR_SAMPLES = 10

monotonic_ns = time.monotonic_ns
_NTF_FROM_STRING = chat_pb2.S_ROOM_CHAT_NTF.FromString

ReplyHandler = Callable[[int, Message], None]


def _check_size(size: int) -> None:
    """The checks of FrameDecoder, for frames the hot loop cuts itself."""
    if size < HEADER_SIZE:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"frame size {size} < {HEADER_SIZE}")
    if size > MAX_FRAME:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"frame size {size} > limit {MAX_FRAME}")


def _check_header(size: int, kind: int) -> int:
    """The frame's id, once its size and id are known to be ones a server may send (else ProtocolError)."""
    _check_size(size)
    if kind not in SERVER_IDS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown message id {kind}")
    return kind


class BenchClient:
    """State of one simulated user: login, room membership, its room's seq, its messages in flight.

    `outstanding` maps the client_msg_id of each message sent whose own copy
    has not come back to the time latency is measured from (the send time,
    or the due time with latency_from="schedule").
    """

    __slots__ = ("index", "clients", "name", "counters", "hist", "on_reply", "on_broken", "pending", "player_id",
                 "room_id", "members", "seq", "outstanding", "sent_n", "error_samples", "broken", "json",
                 "room_size", "churn", "epoch", "frames", "at_drop", "resuming", "resume_since", "resumed",
                 "replay_head", "resent", "send_now")

    def __init__(self, index: int, name: str, counters: Counters, hist: HdrHistogram, clients: int,
                 on_reply: ReplyHandler | None = None, error_samples: list[str] | None = None, *,
                 json: bool = False, churn: bool = False, room_size: int = 0) -> None:
        self.index = index
        self.json = json  # send JSON text (chatcluster.json.v1) instead of frames
        self.clients = clients
        self.name = name
        self.counters = counters
        self.hist = hist
        self.on_reply = on_reply
        self.on_broken: Callable[[], None] | None = None  # the stream cannot be framed any further
        self.pending = b""
        self.player_id = 0
        self.room_id = 0
        self.members = 0
        self.seq = SeqCheck()
        self.outstanding: dict[int, int] = {}
        self.sent_n = 0
        self.error_samples = error_samples if error_samples is not None else []
        self.broken = False
        self.room_size = room_size  # the room's bench clients: under churn, each must get every message once
        self.churn = churn
        self.epoch = 0              # the room's epoch, from the create/join answer (and each resume's)
        self.frames: dict[int, bytes | str] = {}  # churn: the frame of each message in `outstanding`
        self.at_drop: list[int] = []  # the messages in flight when the connection was dropped
        self.resuming = False       # a resume was sent and is not answered yet
        self.resume_since = 0       # its since_seq
        self.resumed = False        # this connection came from a resume: a seq hole is `missed`
        self.replay_head = 0        # a recovered resume's head_seq until the replay has reached it
        self.resent: set[int] = set()  # client_msg_ids sent again after a resume
        self.send_now: Callable[[bytes | str], None] | None = None  # the adapter's write, for resends

    # ---- frames to send (JSON text with json=True) -----------------------------------
    def _request(self, message: Message) -> bytes | str:
        return wsjson.request(message) if self.json else encode(message)

    def login_frame(self, password: str) -> bytes | str:
        return self._request(chat_pb2.C_LOGIN_REQ(name=self.name, password=password))

    def create_frame(self, room_name: str) -> bytes | str:
        return self._request(chat_pb2.C_CREATE_ROOM_REQ(name=room_name))

    def join_frame(self, room_id: int) -> bytes | str:
        return self._request(chat_pb2.C_JOIN_ROOM_REQ(room_id=room_id))

    def resume_frame(self) -> bytes | str:
        """After a new connection and login: the resuming join of the room, from the last seq received."""
        self.resuming = True
        self.resume_since = self.seq.last
        return self._request(chat_pb2.C_JOIN_ROOM_REQ(room_id=self.room_id, resume=True,
                                                      since_seq=self.resume_since, epoch=self.epoch))

    def chat_frame(self, n: int, measured: bool, text: str, clock_ns: int) -> bytes | str:
        """The frame of message n; remembers it as in flight since clock_ns and counts its expected fan-out."""
        cid = msg_id(n, measured, self.index, self.clients)
        key = cid if self.churn else 0  # under churn a message may be sent again: with the same key
        if self.json:
            frame: bytes | str = wsjson.chat_request(text, cid, key)
        else:
            frame = encode(chat_pb2.C_ROOM_CHAT_REQ(text=text, client_msg_id=cid, idempotency_key=key))
        self.outstanding[cid] = clock_ns
        if key:
            self.frames[cid] = frame
        if n >= self.sent_n:
            self.sent_n = n + 1
        c = self.counters
        c.app_in += 1
        if measured:
            c.measured_sent += 1
            c.expected += self.members
            c.expected_all += self.room_size
        return frame

    # ---- bytes received ----------------------------------------------------------
    def receive(self, data: bytes, now_ns: int | None = None) -> None:
        """Account for one read from the socket; every frame in it arrived at now_ns (default: now).

        This is the load generator's hot path, run once per delivery: frames
        are cut here rather than by a FrameDecoder call each, a notification is
        parsed into a fresh message (upb keeps what a reused message parsed
        in its arena until the message dies: a reused one grows without
        bound), and the common case, the next seq of another client's message,
        is handled inline with local variables. Anything unusual goes to a method.
        """
        if now_ns is None:
            now_ns = monotonic_ns()
        c = self.counters
        c.io_r += 1
        c.bytes_r += len(data)
        if self.pending:
            data = self.pending + data
        end = len(data)
        pos = 0
        parse = _NTF_FROM_STRING
        my_room, index, clients = self.room_id, self.index, self.clients
        seq_check = self.seq
        last = seq_check.last
        frames = notifications = measured = 0
        try:
            while end - pos >= HEADER_SIZE:
                size = data[pos] | data[pos + 1] << 8
                nxt = pos + size
                if data[pos + 2] != _NTF or data[pos + 3] or size < HEADER_SIZE or nxt > end:
                    kind = _check_header(size, data[pos + 2] | data[pos + 3] << 8)
                    if nxt > end:
                        break
                    frames += 1
                    body = data[pos + HEADER_SIZE:nxt]
                    pos = nxt
                    seq_check.last = last
                    self._other(kind, body)
                    my_room, last = self.room_id, seq_check.last
                    continue
                body = data[pos + HEADER_SIZE:nxt]
                pos = nxt
                frames += 1
                notifications += 1
                try:
                    ntf = parse(body)
                except DecodeError:
                    c.undecodable += 1
                    continue
                if ntf.room_id != my_room:
                    c.wrong_room += 1
                    continue
                seq = ntf.seq
                if seq == last + 1:
                    last = seq
                else:
                    seq_check.last = last
                    if seq <= last and self.churn and self._echo(seq, ntf.client_msg_id, ntf.sender.player_id,
                                                                 now_ns):
                        notifications -= 1
                        continue
                    if self.resumed:
                        seq_check.see_resumed(seq, c)
                    else:
                        seq_check.see(seq, c)
                    last = seq_check.last
                cid = ntf.client_msg_id
                if cid & 1:
                    measured += 1
                if (cid >> 1) % clients == index:
                    self._own_copy(cid, ntf.sender.player_id, now_ns)
            if end - pos >= 2:  # the size alone already tells a bad frame
                _check_size(data[pos] | data[pos + 1] << 8)
        except ProtocolError as exc:
            pos = end
            self.fail_stream(f"framing error: {exc.message}")
        finally:
            self.pending = data[pos:] if pos < end else b""
            seq_check.last = last
            c.frames_r += frames
            c.deliveries += notifications
            c.delivered += measured
        if self.replay_head and seq_check.last >= self.replay_head:
            self._replay_done()

    def receive_json(self, payload: bytes, now_ns: int) -> None:
        """Account for one text message of chatcluster.json.v1: one server message as a JSON object.

        The counterpart of receive() for the JSON subprotocol (the adapter
        counts the reads and bytes). A chat notification, once per delivery,
        is read straight from the parsed object (what the bench checks: room,
        seq, client_msg_id, sender); json_format's parser costs 17 µs per
        message against 1.3 µs for the bare JSON parse (wsmeasure.py), which
        at the seed profile's 250,000 deliveries a second would make the
        bench the bottleneck. Every other message goes through json_format.
        """
        c = self.counters
        c.frames_r += 1
        try:
            obj = wsjson.decode_object(payload)
            kind = obj["type"]
        except (ValueError, KeyError, TypeError) as exc:
            c.undecodable += 1
            self._sample_error(f"{self.name}: not a JSON message object: {exc}")
            return
        if kind != "S_ROOM_CHAT_NTF":
            try:
                kind_id, msg = wsjson.message_of(obj)
            except ValueError as exc:
                c.undecodable += 1
                self._sample_error(f"{self.name}: {exc}")
                return
            self._handle(kind_id, msg)
            return
        try:
            room = int(obj.get("roomId", 0))
            seq = int(obj.get("seq", 0))
            cid = int(obj.get("clientMsgId", 0))
            sender = obj.get("sender")
            sender_id = int(sender.get("playerId", 0)) if sender is not None else 0
        except (ValueError, TypeError, AttributeError) as exc:
            c.undecodable += 1
            self._sample_error(f"{self.name}: bad S_ROOM_CHAT_NTF fields: {exc}")
            return
        if seq <= self.seq.last and self.churn and room == self.room_id and self._echo(seq, cid, sender_id, now_ns):
            return
        c.deliveries += 1
        if room != self.room_id:
            c.wrong_room += 1
            return
        if self.resumed:
            self.seq.see_resumed(seq, c)
        else:
            self.seq.see(seq, c)
        if cid & 1:
            c.delivered += 1
        if (cid >> 1) % self.clients == self.index:
            self._own_copy(cid, sender_id, now_ns)
        if self.replay_head and self.seq.last >= self.replay_head:
            self._replay_done()

    def fail_stream(self, why: str) -> None:
        """What the client receives can no longer be cut into messages: count it and ask to close."""
        self.counters.undecodable += 1
        self.broken = True
        self._sample_error(f"{self.name}: {why}")
        if self.on_broken is not None:
            self.on_broken()

    def _own_copy(self, cid: int, sender_id: int, now_ns: int) -> None:
        c = self.counters
        if sender_id != self.player_id:  # our id, someone else's name on it
            c.unknown_own += 1
            return
        since = self.outstanding.pop(cid, None)
        if since is None:
            n = (cid >> 1) // self.clients - 1
            if 0 <= n < self.sent_n:
                c.duplicates += 1
            else:
                c.unknown_own += 1
            return
        c.own_received += 1
        if self.churn:
            self.frames.pop(cid, None)
            if self.replay_head or cid in self.resent:  # its latency is the outage's: not timed
                c.own_recovered += 1
                return
        if cid & 1:
            us = (now_ns - since) // 1000
            self.hist.record_value(LAT_LOW_US if us < LAT_LOW_US else LAT_HIGH_US if us > LAT_HIGH_US else us)
            c.latencies += 1

    # ---- churn: a dropped connection, its resume, the replay, the resends -------------------
    def dropped(self) -> None:
        """The connection is gone (dropped on purpose, or a reconnection's that failed): start the next clean.

        What was in flight may have to be sent again after the resume.
        """
        self.pending = b""
        if self.replay_head:  # a replay cut short: what came of it is counted, the next resume asks for the rest
            self.counters.replayed += max(0, self.seq.last - self.resume_since)
        self.replay_head = 0
        self.resuming = False
        self.at_drop = list(self.outstanding)

    def _echo(self, seq: int, cid: int, sender_id: int, now_ns: int) -> bool:
        """An own copy, at or below the last seq, of a message sent again: the server's answer to the resend.

        Its original was seen (a resend echo, neither a duplicate nor a step
        back), or, if it was not, it is that message's own copy (the hole it
        left was counted already). False for anything else.
        """
        if cid not in self.resent or (cid >> 1) % self.clients != self.index or sender_id != self.player_id:
            return False
        c = self.counters
        if self.outstanding.pop(cid, None) is None:
            c.resend_echoes += 1
        else:
            self.frames.pop(cid, None)
            c.own_received += 1
            c.own_recovered += 1
        return True

    def _resumed(self, res: chat_pb2.S_JOIN_ROOM_RES) -> None:
        """The answer to the resume (PROTOCOL.md 1.1): recovered, or an honest false, or a false that lies."""
        c = self.counters
        since = self.resume_since
        self.resuming = False
        self.resumed = True
        self.room_id = res.room.room_id
        self.members = len(res.members)
        c.resumes += 1
        if res.recovered:
            c.resumes_recovered += 1
            self.epoch = res.epoch
            self.replay_head = res.head_seq
            if self.seq.last >= res.head_seq:
                self._replay_done()
            return
        c.resumes_not_recovered += 1
        # Legitimate only if continuity is gone (another epoch) or memory no longer reaches since+1.
        if res.epoch == self.epoch and (res.head_seq <= since or 0 < res.oldest_seq <= since + 1):
            c.resumes_in_window_not_recovered += 1
            self._sample_error(f"{self.name}: resume since {since} said recovered=false within the window "
                               f"(epoch {res.epoch}, oldest_seq {res.oldest_seq}, head_seq {res.head_seq})")
        c.missed += max(0, res.head_seq - since)  # seq goes on across epochs (the shard never reuses one)
        self.epoch = res.epoch
        self.seq.last = res.head_seq  # live messages go on after head_seq (no history was asked for)
        self._replay_done()

    def _replay_done(self) -> None:
        """The replay reached head_seq: send again, with the same key, what was in flight and never came back."""
        if self.replay_head:
            self.counters.replayed += max(0, self.replay_head - self.resume_since)
        self.replay_head = 0
        todo = [cid for cid in self.at_drop if cid in self.outstanding]
        self.at_drop = []
        c = self.counters
        for cid in todo:
            frame = self.frames.get(cid)
            if frame is None:
                continue
            self.resent.add(cid)
            c.resent += 1
            if self.send_now is not None:
                self.send_now(frame)

    def _other(self, kind: int, body: bytes) -> None:
        try:
            msg = decode_body(kind, body)
        except DecodeError:
            self.counters.undecodable += 1
            return
        self._handle(kind, msg)

    def _handle(self, kind: int, msg: Message) -> None:
        """A server message other than a chat notification, however it arrived."""
        if kind == _JOIN_NTF:
            if msg.room_id == self.room_id:
                self.members += 1
        elif kind == _LEAVE_NTF:
            if msg.room_id == self.room_id:
                self.members -= 1
        elif kind in SETUP_REPLIES:
            if kind == _ERROR and self.resuming and msg.code == chat_pb2.UNAVAILABLE:
                self.counters.resume_retries += 1  # a shard restoring the room: the adapter tries again
            elif kind == _ERROR:
                self.counters.errors += 1
                code = chat_pb2.ErrorCode.Name(msg.code) if msg.code in chat_pb2.ErrorCode.values() else msg.code
                self._sample_error(f"{self.name}: S_ERROR {code} {msg.message}")
            elif getattr(msg, "success", False):
                if kind == MsgId.S_LOGIN_RES:
                    self.player_id = msg.player_id
                elif kind == _JOIN_RES and self.resuming:
                    self._resumed(msg)
                else:
                    self.room_id = msg.room.room_id
                    self.members = len(msg.members)
                    self.epoch = msg.epoch
            if self.on_reply is not None:
                self.on_reply(kind, msg)
        # S_LEAVE_ROOM_ACK, S_ROOM_LIST_RES, S_PONG: nothing the bench asked for; ignored

    def _sample_error(self, text: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text)

    # ---- the end --------------------------------------------------------------------
    def settle(self) -> None:
        """At the end of the grace period: every measured message still in flight is lost."""
        c = self.counters
        for cid in self.outstanding:
            if cid & 1:
                c.lost += 1
            else:
                c.warmup_lost += 1
        self.outstanding.clear()
        self.frames.clear()

    def measured_in_flight(self) -> int:
        return sum(1 for cid in self.outstanding if cid & 1)
