from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOWN: _ClassVar[ErrorCode]
    BAD_REQUEST: _ClassVar[ErrorCode]
    NOT_LOGGED_IN: _ClassVar[ErrorCode]
    NOT_IN_ROOM: _ClassVar[ErrorCode]
    ROOM_NOT_FOUND: _ClassVar[ErrorCode]
    RATE_LIMITED: _ClassVar[ErrorCode]
    TOO_LARGE: _ClassVar[ErrorCode]
    UNAVAILABLE: _ClassVar[ErrorCode]
    AUTH_FAILED: _ClassVar[ErrorCode]
    REPLACED: _ClassVar[ErrorCode]
    SHUTTING_DOWN: _ClassVar[ErrorCode]
    LIMIT: _ClassVar[ErrorCode]
    KICKED: _ClassVar[ErrorCode]
    BANNED: _ClassVar[ErrorCode]
    MUTED: _ClassVar[ErrorCode]
UNKNOWN: ErrorCode
BAD_REQUEST: ErrorCode
NOT_LOGGED_IN: ErrorCode
NOT_IN_ROOM: ErrorCode
ROOM_NOT_FOUND: ErrorCode
RATE_LIMITED: ErrorCode
TOO_LARGE: ErrorCode
UNAVAILABLE: ErrorCode
AUTH_FAILED: ErrorCode
REPLACED: ErrorCode
SHUTTING_DOWN: ErrorCode
LIMIT: ErrorCode
KICKED: ErrorCode
BANNED: ErrorCode
MUTED: ErrorCode

class Player(_message.Message):
    __slots__ = ("player_id", "name")
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    player_id: int
    name: str
    def __init__(self, player_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ("room_id", "name", "member_count")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    name: str
    member_count: int
    def __init__(self, room_id: _Optional[int] = ..., name: _Optional[str] = ..., member_count: _Optional[int] = ...) -> None: ...

class C_LOGIN_REQ(_message.Message):
    __slots__ = ("name", "password", "token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    token: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class S_LOGIN_RES(_message.Message):
    __slots__ = ("success", "player_id", "message", "name")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    PLAYER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    success: bool
    player_id: int
    message: str
    name: str
    def __init__(self, success: _Optional[bool] = ..., player_id: _Optional[int] = ..., message: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class C_CREATE_ROOM_REQ(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class S_CREATE_ROOM_RES(_message.Message):
    __slots__ = ("success", "room", "members", "message", "epoch", "head_seq")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    success: bool
    room: RoomInfo
    members: _containers.RepeatedCompositeFieldContainer[Player]
    message: str
    epoch: int
    head_seq: int
    def __init__(self, success: _Optional[bool] = ..., room: _Optional[_Union[RoomInfo, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Player, _Mapping]]] = ..., message: _Optional[str] = ..., epoch: _Optional[int] = ..., head_seq: _Optional[int] = ...) -> None: ...

class C_JOIN_ROOM_REQ(_message.Message):
    __slots__ = ("room_id", "history", "resume", "since_seq", "epoch")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    SINCE_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    history: int
    resume: bool
    since_seq: int
    epoch: int
    def __init__(self, room_id: _Optional[int] = ..., history: _Optional[int] = ..., resume: _Optional[bool] = ..., since_seq: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class S_JOIN_ROOM_RES(_message.Message):
    __slots__ = ("success", "room", "members", "message", "epoch", "head_seq", "oldest_seq", "recovered")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    OLDEST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    success: bool
    room: RoomInfo
    members: _containers.RepeatedCompositeFieldContainer[Player]
    message: str
    epoch: int
    head_seq: int
    oldest_seq: int
    recovered: bool
    def __init__(self, success: _Optional[bool] = ..., room: _Optional[_Union[RoomInfo, _Mapping]] = ..., members: _Optional[_Iterable[_Union[Player, _Mapping]]] = ..., message: _Optional[str] = ..., epoch: _Optional[int] = ..., head_seq: _Optional[int] = ..., oldest_seq: _Optional[int] = ..., recovered: _Optional[bool] = ...) -> None: ...

class S_JOIN_ROOM_NTF(_message.Message):
    __slots__ = ("room_id", "player")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYER_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    player: Player
    def __init__(self, room_id: _Optional[int] = ..., player: _Optional[_Union[Player, _Mapping]] = ...) -> None: ...

class C_ROOM_CHAT_REQ(_message.Message):
    __slots__ = ("text", "client_msg_id", "idempotency_key")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    text: str
    client_msg_id: int
    idempotency_key: int
    def __init__(self, text: _Optional[str] = ..., client_msg_id: _Optional[int] = ..., idempotency_key: _Optional[int] = ...) -> None: ...

class S_ROOM_CHAT_NTF(_message.Message):
    __slots__ = ("room_id", "sender", "text", "seq", "client_msg_id", "server_time_us")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_US_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    sender: Player
    text: str
    seq: int
    client_msg_id: int
    server_time_us: int
    def __init__(self, room_id: _Optional[int] = ..., sender: _Optional[_Union[Player, _Mapping]] = ..., text: _Optional[str] = ..., seq: _Optional[int] = ..., client_msg_id: _Optional[int] = ..., server_time_us: _Optional[int] = ...) -> None: ...

class C_LEAVE_ROOM_REQ(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class S_LEAVE_ROOM_ACK(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class S_LEAVE_ROOM_NTF(_message.Message):
    __slots__ = ("room_id", "player")
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYER_FIELD_NUMBER: _ClassVar[int]
    room_id: int
    player: Player
    def __init__(self, room_id: _Optional[int] = ..., player: _Optional[_Union[Player, _Mapping]] = ...) -> None: ...

class C_ROOM_LIST_REQ(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class S_ROOM_LIST_RES(_message.Message):
    __slots__ = ("rooms",)
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[RoomInfo]
    def __init__(self, rooms: _Optional[_Iterable[_Union[RoomInfo, _Mapping]]] = ...) -> None: ...

class S_ERROR(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class C_PING(_message.Message):
    __slots__ = ("client_time_us",)
    CLIENT_TIME_US_FIELD_NUMBER: _ClassVar[int]
    client_time_us: int
    def __init__(self, client_time_us: _Optional[int] = ...) -> None: ...

class S_PONG(_message.Message):
    __slots__ = ("client_time_us", "server_time_us")
    CLIENT_TIME_US_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_US_FIELD_NUMBER: _ClassVar[int]
    client_time_us: int
    server_time_us: int
    def __init__(self, client_time_us: _Optional[int] = ..., server_time_us: _Optional[int] = ...) -> None: ...

class C_ROOM_HISTORY_REQ(_message.Message):
    __slots__ = ("before_seq", "limit")
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    before_seq: int
    limit: int
    def __init__(self, before_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class S_ROOM_HISTORY_RES(_message.Message):
    __slots__ = ("success", "room_id", "first_seq", "last_seq", "more", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ROOM_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    room_id: int
    first_seq: int
    last_seq: int
    more: bool
    message: str
    def __init__(self, success: _Optional[bool] = ..., room_id: _Optional[int] = ..., first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., more: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...
