from chatcluster.proto import chat_pb2 as _chat_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Member(_message.Message):
    __slots__ = ("session", "player")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    PLAYER_FIELD_NUMBER: _ClassVar[int]
    session: int
    player: _chat_pb2.Player
    def __init__(self, session: _Optional[int] = ..., player: _Optional[_Union[_chat_pb2.Player, _Mapping]] = ...) -> None: ...

class CreateRoom(_message.Message):
    __slots__ = ("request", "room_id", "name", "member")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    request: int
    room_id: int
    name: str
    member: Member
    def __init__(self, request: _Optional[int] = ..., room_id: _Optional[int] = ..., name: _Optional[str] = ..., member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...

class JoinRoom(_message.Message):
    __slots__ = ("request", "room_id", "member", "history", "resume", "since_seq", "epoch")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    request: int
    room_id: int
    member: Member
    history: int
    resume: bool
    since_seq: int
    epoch: int
    def __init__(self, request: _Optional[int] = ..., room_id: _Optional[int] = ..., member: _Optional[_Union[Member, _Mapping]] = ..., history: _Optional[int] = ..., resume: _Optional[bool] = ..., since_seq: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class LeaveRoom(_message.Message):
    __slots__ = ("request", "room_id", "session")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    request: int
    room_id: int
    session: int
    def __init__(self, request: _Optional[int] = ..., room_id: _Optional[int] = ..., session: _Optional[int] = ...) -> None: ...

class ListRooms(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: int
    def __init__(self, request: _Optional[int] = ...) -> None: ...

class RoomHistory(_message.Message):
    __slots__ = ("request", "room_id", "session", "before_seq", "limit")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    request: int
    room_id: int
    session: int
    before_seq: int
    limit: int
    def __init__(self, request: _Optional[int] = ..., room_id: _Optional[int] = ..., session: _Optional[int] = ..., before_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("node", "incarnation", "sent_us", "rebuild")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SENT_US_FIELD_NUMBER: _ClassVar[int]
    REBUILD_FIELD_NUMBER: _ClassVar[int]
    node: str
    incarnation: int
    sent_us: int
    rebuild: bool
    def __init__(self, node: _Optional[str] = ..., incarnation: _Optional[int] = ..., sent_us: _Optional[int] = ..., rebuild: _Optional[bool] = ...) -> None: ...

class Rebuild(_message.Message):
    __slots__ = ("room_id", "name", "last_seq", "members", "epoch")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    name: str
    last_seq: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    epoch: int
    def __init__(self, room_id: _Optional[int] = ..., name: _Optional[str] = ..., last_seq: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., epoch: _Optional[int] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("player_id", "session")
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    player_id: int
    session: int
    def __init__(self, player_id: _Optional[int] = ..., session: _Optional[int] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ("player_id", "session")
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    player_id: int
    session: int
    def __init__(self, player_id: _Optional[int] = ..., session: _Optional[int] = ...) -> None: ...

class Operate(_message.Message):
    __slots__ = ("request", "action", "room_id", "player_id", "text", "reason", "until_us", "code", "since_seq", "limit")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[Operate.Action]
        PUBLISH: _ClassVar[Operate.Action]
        ROOM: _ClassVar[Operate.Action]
        KICK: _ClassVar[Operate.Action]
        DISCONNECT: _ClassVar[Operate.Action]
        MUTE: _ClassVar[Operate.Action]
        UNMUTE: _ClassVar[Operate.Action]
        HISTORY: _ClassVar[Operate.Action]
        UNBAN: _ClassVar[Operate.Action]
    NONE: Operate.Action
    PUBLISH: Operate.Action
    ROOM: Operate.Action
    KICK: Operate.Action
    DISCONNECT: Operate.Action
    MUTE: Operate.Action
    UNMUTE: Operate.Action
    HISTORY: Operate.Action
    UNBAN: Operate.Action
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNTIL_US_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    request: int
    action: Operate.Action
    room_id: int
    player_id: int
    text: str
    reason: str
    until_us: int
    code: _chat_pb2.ErrorCode
    since_seq: int
    limit: int
    def __init__(self, request: _Optional[int] = ..., action: _Optional[_Union[Operate.Action, str]] = ..., room_id: _Optional[int] = ..., player_id: _Optional[int] = ..., text: _Optional[str] = ..., reason: _Optional[str] = ..., until_us: _Optional[int] = ..., code: _Optional[_Union[_chat_pb2.ErrorCode, str]] = ..., since_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Kick(_message.Message):
    __slots__ = ("player_id", "session", "code", "reason", "room_id")
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    player_id: int
    session: int
    code: _chat_pb2.ErrorCode
    reason: str
    room_id: int
    def __init__(self, player_id: _Optional[int] = ..., session: _Optional[int] = ..., code: _Optional[_Union[_chat_pb2.ErrorCode, str]] = ..., reason: _Optional[str] = ..., room_id: _Optional[int] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("request", "session", "ok", "room_id", "frame", "not_member", "room_name", "room_unknown", "epoch", "head_seq")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    NOT_MEMBER_FIELD_NUMBER: _ClassVar[int]
    ROOM_NAME_FIELD_NUMBER: _ClassVar[int]
    ROOM_UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    request: int
    session: int
    ok: bool
    room_id: int
    frame: bytes
    not_member: bool
    room_name: str
    room_unknown: bool
    epoch: int
    head_seq: int
    def __init__(self, request: _Optional[int] = ..., session: _Optional[int] = ..., ok: _Optional[bool] = ..., room_id: _Optional[int] = ..., frame: _Optional[bytes] = ..., not_member: _Optional[bool] = ..., room_name: _Optional[str] = ..., room_unknown: _Optional[bool] = ..., epoch: _Optional[int] = ..., head_seq: _Optional[int] = ...) -> None: ...

class RoomList(_message.Message):
    __slots__ = ("request", "rooms")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    request: int
    rooms: _containers.RepeatedCompositeFieldContainer[_chat_pb2.RoomInfo]
    def __init__(self, request: _Optional[int] = ..., rooms: _Optional[_Iterable[_Union[_chat_pb2.RoomInfo, _Mapping]]] = ...) -> None: ...

class RoomMember(_message.Message):
    __slots__ = ("player", "gateway", "session")
    PLAYER_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    player: _chat_pb2.Player
    gateway: str
    session: int
    def __init__(self, player: _Optional[_Union[_chat_pb2.Player, _Mapping]] = ..., gateway: _Optional[str] = ..., session: _Optional[int] = ...) -> None: ...

class Operated(_message.Message):
    __slots__ = ("request", "ok", "error", "message", "seq", "room_name", "members", "frames", "more", "count")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ROOM_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    request: int
    ok: bool
    error: str
    message: str
    seq: int
    room_name: str
    members: _containers.RepeatedCompositeFieldContainer[RoomMember]
    frames: _containers.RepeatedScalarFieldContainer[bytes]
    more: bool
    count: int
    def __init__(self, request: _Optional[int] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., message: _Optional[str] = ..., seq: _Optional[int] = ..., room_name: _Optional[str] = ..., members: _Optional[_Iterable[_Union[RoomMember, _Mapping]]] = ..., frames: _Optional[_Iterable[bytes]] = ..., more: _Optional[bool] = ..., count: _Optional[int] = ...) -> None: ...
