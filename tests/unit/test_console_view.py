"""ConsoleView, the sans-I/O half of `chatctl client`: whole dialogs with built messages, no I/O."""

from __future__ import annotations

import pytest

from chatcluster.common.frames import MAX_CLIENT_FRAME, MsgId, encode
from chatcluster.console_text import error_name, printable
from chatcluster.console_view import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HISTORY_ON_JOIN,
    MENU_PROMPT,
    RESUME_RETRY,
    ConsoleView,
    Stage,
)
from chatcluster.proto import chat_pb2


def player(pid: int, name: str) -> chat_pb2.Player:
    return chat_pb2.Player(player_id=pid, name=name)


def room_info(rid: int = 1, name: str = "TestRoom", count: int = 1) -> chat_pb2.RoomInfo:
    return chat_pb2.RoomInfo(room_id=rid, name=name, member_count=count)


def logged_in(name: str = "User1", pid: int = 5, **kwargs) -> ConsoleView:
    view = ConsoleView(**kwargs)
    view.handle_input(name)
    view.handle_input("pw")
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=pid))
    return view


def in_room(rid: int = 1, room: str = "TestRoom", others: tuple[tuple[int, str], ...] = ()) -> ConsoleView:
    view = logged_in()
    view.handle_input("1")
    view.handle_input(room)
    members = [player(5, "User1"), *(player(p, n) for p, n in others)]
    view.receive(chat_pb2.S_CREATE_ROOM_RES(success=True, room=room_info(rid, room, len(members)), members=members))
    return view


def chat_ntf(text: str, sender: tuple[int, str] = (6, "User2"), rid: int = 1, cmid: int = 1,
             seq: int = 1) -> chat_pb2.S_ROOM_CHAT_NTF:
    return chat_pb2.S_ROOM_CHAT_NTF(room_id=rid, sender=player(*sender), text=text, seq=seq, client_msg_id=cmid)


# ------------------------------------------------------------------- login


def test_login_asks_name_then_hidden_password_and_sends_login_req():
    view = ConsoleView()
    assert (view.stage, view.prompt, view.prompt_is_secret) == (Stage.NAME, "Player name: ", False)
    assert view.handle_input("  User1 ").lines == []
    assert (view.stage, view.prompt_is_secret) == (Stage.PASSWORD, True)
    step = view.handle_input("s3cret")
    assert step.send == chat_pb2.C_LOGIN_REQ(name="User1", password="s3cret")
    assert view.awaiting is MsgId.S_LOGIN_RES
    assert not view.logged_in


def test_password_is_sent_as_typed_and_never_printed():
    view = ConsoleView(name="User1")
    step = view.handle_input(" pass word ")
    assert step.send.password == " pass word "
    assert not any("pass word" in line for line in step.lines)


def test_empty_name_is_asked_again():
    view = ConsoleView()
    step = view.handle_input("   ")
    assert step.send is None and view.stage is Stage.NAME
    assert step.lines == ["A player name is needed."]


def test_name_from_the_command_line_skips_the_name_prompt():
    view = ConsoleView(name="alice")
    assert view.stage is Stage.PASSWORD
    assert view.handle_input("pw").send == chat_pb2.C_LOGIN_REQ(name="alice", password="pw")


def test_successful_login_shows_player_id_and_server_message_then_the_menu():
    view = ConsoleView(name="User1")
    view.handle_input("pw")
    lines = view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5, message="Login successful."))
    assert lines == ["Logged in as User1 (player ID: 5).", "Server: Login successful."]
    assert view.logged_in and view.player_id == 5 and view.awaiting is None
    assert view.stage is Stage.MENU and view.prompt == MENU_PROMPT
    assert "[create room: 1] [join room: 2] [list rooms: 3] [quit: q]" in view.prompt


def test_failed_login_shows_the_server_message_and_asks_again_when_interactive():
    view = ConsoleView()
    view.handle_input("User1")
    view.handle_input("bad")
    lines = view.receive(chat_pb2.S_LOGIN_RES(success=False, message="wrong password"))
    assert lines == ["Login failed: wrong password.", "Try again."]
    assert view.exit_status is None and view.awaiting is None
    assert view.stage is Stage.NAME and not view.logged_in


def test_failed_login_with_fixed_name_asks_only_the_password_again():
    view = ConsoleView(name="User1")
    view.handle_input("bad")
    view.receive(chat_pb2.S_LOGIN_RES(success=False))
    assert view.stage is Stage.PASSWORD and view.name == "User1"


def test_failed_login_ends_a_script_with_failure():
    view = ConsoleView(interactive=False)
    view.handle_input("User1")
    view.handle_input("bad")
    lines = view.receive(chat_pb2.S_LOGIN_RES(success=False, message="wrong password"))
    assert lines == ["Login failed: wrong password."]
    assert view.exit_status == EXIT_FAILURE


def test_login_refused_without_a_message_still_says_why():
    view = ConsoleView(name="x")
    view.handle_input("pw")
    assert view.receive(chat_pb2.S_LOGIN_RES(success=False))[0] == "Login failed: refused by the server."


def test_s_error_during_login_ends_the_wait_and_asks_again():
    view = ConsoleView(name="x")
    view.handle_input("pw")
    lines = view.receive(chat_pb2.S_ERROR(code=chat_pb2.SHUTTING_DOWN, message="server is stopping"))
    assert lines[0] == "Error SHUTTING_DOWN: server is stopping"
    assert view.awaiting is None and view.stage is Stage.PASSWORD


# -------------------------------------------------------------------- menu


def test_menu_create_asks_room_name_and_sends_create():
    view = logged_in()
    assert view.handle_input("1").send is None
    assert view.stage is Stage.ROOM_NAME and "room" in view.prompt.lower()
    step = view.handle_input(" TestRoom ")
    assert step.send == chat_pb2.C_CREATE_ROOM_REQ(name="TestRoom")
    assert view.awaiting is MsgId.S_CREATE_ROOM_RES


def test_menu_create_with_empty_name_goes_back_to_the_menu():
    view = logged_in()
    view.handle_input("1")
    step = view.handle_input("")
    assert step.send is None and view.stage is Stage.MENU and step.lines


def test_menu_join_asks_room_id_and_sends_join():
    view = logged_in()
    view.handle_input("2")
    assert view.stage is Stage.ROOM_ID
    step = view.handle_input(" 42 ")
    assert step.send == chat_pb2.C_JOIN_ROOM_REQ(room_id=42, history=HISTORY_ON_JOIN)  # the last messages too
    assert view.awaiting is MsgId.S_JOIN_ROOM_RES


@pytest.mark.parametrize("text", ["abc", "-1", "0", "1.5", "٣", str(2**64)])
def test_menu_join_refuses_what_is_not_a_room_id(text):
    view = logged_in()
    view.handle_input("2")
    step = view.handle_input(text)
    assert step.send is None and view.awaiting is None and view.stage is Stage.MENU
    assert step.lines[0].startswith("Not a room id")


def test_menu_join_accepts_hash_prefix():
    view = logged_in()
    view.handle_input("2")
    assert view.handle_input("#7").send.room_id == 7


def test_menu_list_sends_room_list_and_prints_rooms():
    view = logged_in()
    step = view.handle_input("3")
    assert step.send == chat_pb2.C_ROOM_LIST_REQ()
    assert view.awaiting is MsgId.S_ROOM_LIST_RES
    lines = view.receive(chat_pb2.S_ROOM_LIST_RES(rooms=[room_info(1, "TestRoom", 2), room_info(4, "Lobby", 1)]))
    assert lines == ["--- rooms (2) ---", "- Room 1: TestRoom (2 members)", "- Room 4: Lobby (1 member)"]
    assert view.awaiting is None and view.stage is Stage.MENU


def test_empty_room_list_says_so():
    view = logged_in()
    view.handle_input("3")
    assert view.receive(chat_pb2.S_ROOM_LIST_RES()) == ["No rooms yet: create one with 1."]


@pytest.mark.parametrize("choice", ["q", "Q", "quit", "/quit"])
def test_menu_quit(choice):
    view = logged_in()
    step = view.handle_input(choice)
    assert step.send is None and view.exit_status == EXIT_OK


def test_menu_unknown_choice_explains_and_empty_line_is_ignored():
    view = logged_in()
    assert view.handle_input("9").lines == ["Unknown choice '9': type 1, 2, 3 or q."]
    assert view.handle_input("").lines == []
    assert view.stage is Stage.MENU and view.exit_status is None


# -------------------------------------------------------------- enter room


def test_create_success_shows_the_seed_style_banner_and_enters_the_room():
    view = logged_in()
    view.handle_input("1")
    view.handle_input("TestRoom")
    lines = view.receive(chat_pb2.S_CREATE_ROOM_RES(success=True, room=room_info(1, "TestRoom"),
                                                    members=[player(5, "User1")]))
    assert lines[0] == "=====" and lines[-1] == "====="
    assert "Room created: TestRoom (ID: 1)" in lines
    assert lines[-3:] == ["--- members ---", "- User1 (ID: 5)", "====="]
    assert any("/exit" in line for line in lines)
    assert (view.room_id, view.room_name, view.members) == (1, "TestRoom", {5: "User1"})
    assert view.stage is Stage.ROOM and view.awaiting is None and view.in_room
    assert view.prompt == "User1@TestRoom> "


def test_join_success_lists_every_member_in_server_order():
    view = logged_in("User2", 6)
    view.handle_input("2")
    view.handle_input("1")
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(1, "TestRoom", 2),
                                                  members=[player(5, "User1"), player(6, "User2")]))
    assert "Joined room TestRoom (ID: 1)" in lines
    assert lines[-4:] == ["--- members ---", "- User1 (ID: 5)", "- User2 (ID: 6)", "====="]
    assert view.members == {5: "User1", 6: "User2"} and view.stage is Stage.ROOM


def test_join_success_with_a_server_message_shows_it_under_the_headline():
    view = logged_in()
    view.handle_input("2")
    view.handle_input("1")
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                                  message="member list truncated (1 of 2000)"))
    assert lines[1:3] == ["Joined room TestRoom (ID: 1)", "Server: member list truncated (1 of 2000)"]
    assert lines[-3:] == ["--- members ---", "- User1 (ID: 5)", "====="]


def test_create_success_with_a_server_message_shows_it_under_the_headline():
    view = logged_in()
    view.handle_input("1")
    view.handle_input("TestRoom")
    lines = view.receive(chat_pb2.S_CREATE_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                                    message="Room created."))
    assert lines[1:3] == ["Room created: TestRoom (ID: 1)", "Server: Room created."]


def test_join_failure_shows_the_server_message_and_returns_to_the_menu():
    view = logged_in()
    view.handle_input("2")
    view.handle_input("99")
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=False, message="room not found"))
    assert lines == ["Could not join the room: room not found."]
    assert view.stage is Stage.MENU and view.awaiting is None and not view.in_room


def test_create_failure_shows_the_server_message():
    view = logged_in()
    view.handle_input("1")
    view.handle_input("x" * 300)
    lines = view.receive(chat_pb2.S_CREATE_ROOM_RES(success=False))
    assert lines == ["Could not create the room: refused by the server."]
    assert view.stage is Stage.MENU and view.awaiting is None


@pytest.mark.parametrize("awaited_choice", [("1", "room"), ("2", "3"), ("3",)])
def test_s_error_answering_a_menu_request_returns_to_the_menu(awaited_choice):
    view = logged_in()
    for line in awaited_choice:
        view.handle_input(line)
    assert view.awaiting is not None
    lines = view.receive(chat_pb2.S_ERROR(code=chat_pb2.LIMIT, message="too many rooms"))
    assert lines == ["Error LIMIT: too many rooms"]
    assert view.awaiting is None and view.stage is Stage.MENU and view.exit_status is None


# ------------------------------------------------------------------ in room


def test_chat_sends_text_with_client_msg_id_counting_from_one():
    view = in_room()
    first = view.handle_input("Hi Im User1")
    second = view.handle_input("again")
    assert (first.send.text, first.send.client_msg_id) == ("Hi Im User1", 1)
    assert (second.send.text, second.send.client_msg_id) == ("again", 2)
    # each line has a key of its own, so that sending it again after a drop cannot make it twice
    assert 0 < first.send.idempotency_key != second.send.idempotency_key > 0
    assert first.lines == [] and view.awaiting is None  # the echo is the confirmation: no wait
    assert view.unanswered_chats == 2


def test_client_msg_id_keeps_counting_across_rooms():
    view = in_room()
    view.handle_input("a")
    view.handle_input("/exit")
    view.receive(chat_pb2.S_LEAVE_ROOM_ACK(success=True))
    view.handle_input("1")
    view.handle_input("other")
    view.receive(chat_pb2.S_CREATE_ROOM_RES(success=True, room=room_info(2, "other"), members=[player(5, "User1")]))
    assert view.handle_input("b").send.client_msg_id == 2


def test_chat_text_keeps_its_spaces():
    view = in_room()
    assert view.handle_input("  indented  ").send.text == "  indented  "


def test_blank_line_in_room_sends_nothing():
    view = in_room()
    step = view.handle_input("   ")
    assert step.send is None and step.lines == []


def test_incoming_chat_and_own_echo_look_the_same():
    view = in_room()
    view.handle_input("Hi Im User1")
    assert view.receive(chat_ntf("Hi Im User1", sender=(5, "User1"), cmid=1)) == ["[Room 1] User1: Hi Im User1"]
    assert view.unanswered_chats == 0
    assert view.receive(chat_ntf("Hi Im User2 Test is Good", seq=2)) == ["[Room 1] User2: Hi Im User2 Test is Good"]


def test_join_and_leave_notices_update_members():
    view = in_room()
    assert view.receive(chat_pb2.S_JOIN_ROOM_NTF(room_id=1, player=player(6, "User2"))) == ["User2 joined."]
    assert view.members == {5: "User1", 6: "User2"}
    assert view.receive(chat_pb2.S_LEAVE_ROOM_NTF(room_id=1, player=player(6, "User2"))) == ["User2 left."]
    assert view.members == {5: "User1"}


def test_notices_about_another_room_name_it_and_leave_members_alone():
    view = in_room()
    assert view.receive(chat_pb2.S_JOIN_ROOM_NTF(room_id=9, player=player(6, "User2"))) == ["User2 joined room 9."]
    assert view.receive(chat_pb2.S_LEAVE_ROOM_NTF(room_id=9, player=player(6, "User2"))) == ["User2 left room 9."]
    assert view.members == {5: "User1"}


def test_members_and_help_commands_are_local():
    view = in_room(others=((6, "User2"),))
    step = view.handle_input("/members")
    assert step.send is None
    assert step.lines == ["--- members ---", "- User1 (ID: 5)", "- User2 (ID: 6)"]
    help_step = view.handle_input("/help")
    assert help_step.send is None and "/exit" in help_step.lines[0]


def test_unknown_slash_command_is_not_sent_as_chat():
    view = in_room()
    step = view.handle_input("/shrug")
    assert step.send is None and step.lines[0].startswith("Unknown command /shrug")


def test_exit_sends_leave_and_waits_for_the_ack():
    view = in_room()
    step = view.handle_input("/exit")
    assert step.send == chat_pb2.C_LEAVE_ROOM_REQ()
    assert view.awaiting is MsgId.S_LEAVE_ROOM_ACK and view.in_room
    lines = view.receive(chat_pb2.S_LEAVE_ROOM_ACK(success=True))
    assert lines == ["You left room TestRoom. Back to the menu."]
    assert view.stage is Stage.MENU and not view.in_room and view.members == {} and view.awaiting is None


def test_chat_that_arrives_before_the_leave_ack_is_still_shown():
    view = in_room()
    view.handle_input("/exit")
    assert view.receive(chat_ntf("last words")) == ["[Room 1] User2: last words"]
    assert view.awaiting is MsgId.S_LEAVE_ROOM_ACK


def test_refused_leave_stays_in_the_room():
    view = in_room()
    view.handle_input("/exit")
    lines = view.receive(chat_pb2.S_LEAVE_ROOM_ACK(success=False, message="room owner restarting"))
    assert lines == ["Could not leave the room: room owner restarting."]
    assert view.in_room and view.stage is Stage.ROOM and view.awaiting is None


def test_s_error_refusing_the_leave_stays_in_the_room():
    view = in_room()
    view.handle_input("/exit")
    view.receive(chat_pb2.S_ERROR(code=chat_pb2.UNAVAILABLE, message="shard down"))
    assert view.in_room and view.stage is Stage.ROOM and view.awaiting is None


def test_quit_from_the_room():
    view = in_room()
    assert view.handle_input("/quit").lines == ["Bye."]
    assert view.exit_status == EXIT_OK


def test_text_too_large_for_a_frame_is_not_sent():
    view = in_room()
    step = view.handle_input("x" * MAX_CLIENT_FRAME)
    assert step.send is None and step.lines[0].startswith("Too long")
    assert view.unanswered_chats == 0
    ok = view.handle_input("y" * 4096)
    assert ok.send is not None and len(encode(ok.send)) <= MAX_CLIENT_FRAME
    assert ok.send.client_msg_id == 1  # the refused line did not use up an id


# ------------------------------------------------------------------ errors


def test_s_error_shows_code_name_and_message():
    view = in_room()
    assert view.receive(chat_pb2.S_ERROR(code=chat_pb2.RATE_LIMITED, message="slow down")) == [
        "Error RATE_LIMITED: slow down"]


def test_s_error_with_an_unknown_code_and_no_message():
    assert logged_in().receive(chat_pb2.S_ERROR(code=99)) == ["Error code 99: (no message)"]
    assert error_name(chat_pb2.AUTH_FAILED) == "AUTH_FAILED"


def test_s_error_while_chat_lines_are_in_flight_answers_the_chat_not_the_leave():
    view = in_room()
    view.handle_input("too fast")
    view.handle_input("/exit")
    view.receive(chat_pb2.S_ERROR(code=chat_pb2.RATE_LIMITED, message="slow down"))
    assert view.awaiting is MsgId.S_LEAVE_ROOM_ACK and view.unanswered_chats == 0
    view.receive(chat_pb2.S_LEAVE_ROOM_ACK(success=True))
    assert view.stage is Stage.MENU


def test_not_in_room_error_resets_a_stale_room():
    view = in_room()
    view.handle_input("hello")
    lines = view.receive(chat_pb2.S_ERROR(code=chat_pb2.NOT_IN_ROOM, message="not in a room"))
    assert lines == ["Error NOT_IN_ROOM: not in a room", "You are not in a room any more. Back to the menu."]
    assert not view.in_room and view.stage is Stage.MENU


def test_replaced_is_reported_like_any_error():
    view = in_room()
    lines = view.receive(chat_pb2.S_ERROR(code=chat_pb2.REPLACED, message="logged in on another connection"))
    assert lines == ["Error REPLACED: logged in on another connection"]


def test_connection_lost_says_so_once_and_fails():
    view = in_room()
    lines = view.connection_lost("closed by the server")
    assert lines == ["Connection to the server lost (closed by the server). Exiting."]
    assert view.exit_status == EXIT_FAILURE
    assert view.connection_lost() == []


def test_connection_closing_after_the_user_quit_is_not_an_error():
    view = logged_in()
    view.handle_input("q")
    assert view.connection_lost("closed by the server") == []
    assert view.exit_status == EXIT_OK


def test_no_answer_gives_up_with_failure():
    view = logged_in()
    view.handle_input("3")
    assert view.no_answer(15) == ["No S_ROOM_LIST_RES from the server in 15 s; disconnecting."]
    assert view.exit_status == EXIT_FAILURE and view.awaiting is None


def test_eof_quits_ok_after_login_and_fails_before():
    view = in_room()
    assert view.handle_eof().lines == ["Bye."]
    assert view.exit_status == EXIT_OK
    early = ConsoleView()
    early.handle_eof()
    assert early.exit_status == EXIT_FAILURE


def test_interrupted():
    view = logged_in()
    assert view.interrupted() == ["Interrupted."]
    assert view.exit_status == EXIT_INTERRUPTED


def test_input_after_the_end_or_during_a_wait_does_nothing():
    view = logged_in()
    view.handle_input("3")
    step = view.handle_input("1")
    assert step.send is None and view.stage is Stage.MENU
    view.receive(chat_pb2.S_ROOM_LIST_RES())
    view.handle_input("q")
    assert view.handle_input("1") == view.handle_input("2")
    assert view.handle_input("1").send is None


def test_input_typed_for_a_prompt_that_went_stale_is_not_acted_on():
    view = in_room()
    stage = view.stage  # the adapter remembers the stage its prompt was drawn for
    view.receive(chat_pb2.S_ERROR(code=chat_pb2.NOT_IN_ROOM, message="room closed"))
    step = view.handle_input("1", stage)  # meant as chat, would now be "create room"
    assert step.send is None and view.stage is Stage.MENU
    assert step.lines[0].startswith("Not acted on")


# ------------------------------------------------------ bytes and frames in


def test_receive_bytes_reassembles_frames_split_anywhere():
    view = in_room()
    data = encode(chat_ntf("one")) + encode(chat_pb2.S_JOIN_ROOM_NTF(room_id=1, player=player(7, "User3")))
    lines: list[str] = []
    for i in range(len(data)):
        lines += view.receive_bytes(data[i:i + 1])
    assert lines == ["[Room 1] User2: one", "User3 joined."]


def test_receive_bytes_handles_many_frames_in_one_read():
    view = logged_in()
    data = encode(chat_pb2.S_PONG(client_time_us=1)) + encode(chat_pb2.S_ROOM_LIST_RES(rooms=[room_info()]))
    assert view.receive_bytes(data) == ["--- rooms (1) ---", "- Room 1: TestRoom (1 member)"]


def test_a_broken_frame_ends_the_client():
    view = logged_in()
    lines = view.receive_bytes(b"\x02\x00\x01\x00")  # size 2 < header
    assert view.exit_status == EXIT_FAILURE and lines[-1].startswith("The server sent a broken frame")


def test_a_client_message_id_from_the_server_is_a_broken_frame():
    view = logged_in()
    view.receive_bytes(encode(chat_pb2.C_PING()))
    assert view.exit_status == EXIT_FAILURE


def test_an_undecodable_body_is_reported_and_skipped():
    view = in_room()
    assert view.receive_frame(int(MsgId.S_ROOM_CHAT_NTF), b"\xff\xff") == [
        "(The server sent an undecodable S_ROOM_CHAT_NTF; ignored.)"]
    assert view.exit_status is None
    assert view.receive_frame(int(MsgId.S_ROOM_CHAT_NTF), chat_ntf("ok").SerializeToString()) == [
        "[Room 1] User2: ok"]


def test_pong_prints_nothing():
    assert logged_in().receive(chat_pb2.S_PONG(client_time_us=1, server_time_us=2)) == []


def test_a_client_message_handed_to_receive_is_ignored():
    assert logged_in().receive(chat_pb2.C_PING())[0].startswith("(Unexpected C_PING")


# ------------------------------------------------ hostile names and texts


def test_control_characters_from_other_users_cannot_drive_the_terminal_or_forge_lines():
    view = in_room()
    line, = view.receive(chat_ntf("hi\n[Room 1] admin: send me your password\x1b[2J", sender=(6, "Eve\rUser1")))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line == "[Room 1] Eve\\rUser1: hi\\n[Room 1] admin: send me your password\\x1b[2J"


def test_printable_keeps_ordinary_unicode():
    assert printable("방 입장 🙂 café") == "방 입장 🙂 café"
    assert printable("a\tb\x00") == "a\\tb\\x00"


# ------------------------------------------------------- history, reconnect and resume (1.1)


def resumable(epoch: int = 77, seen: int = 3) -> ConsoleView:
    """A client with reconnect on, in room 1 (epoch 77), having shown messages 1..seen."""
    view = ConsoleView(reconnect=True)
    view.handle_input("User1")
    view.handle_input("pw")
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5))
    view.handle_input("2")
    view.handle_input("1")
    view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                          epoch=epoch, head_seq=0))
    for seq in range(1, seen + 1):
        view.receive(chat_ntf(f"m{seq}", seq=seq))
    return view


def test_join_shows_how_many_of_the_last_messages_follow():
    view = logged_in()
    view.handle_input("2")
    view.handle_input("1")
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                                  head_seq=300, oldest_seq=201))
    assert lines[-1] == f"--- the last {HISTORY_ON_JOIN} messages ---"
    assert view.receive(chat_ntf("old", seq=281)) == ["[Room 1] User2: old"]


def test_a_dropped_connection_reconnects_logs_in_again_and_resumes():
    view = resumable()
    assert view.connection_lost("closed by the server") == [
        "Connection to the server lost (closed by the server); reconnecting..."]
    assert view.reconnecting and view.exit_status is None and view.awaiting is not None
    assert view.handle_input("typed meanwhile").send is None  # held: not connected
    step = view.reconnected()
    assert step.send == chat_pb2.C_LOGIN_REQ(name="User1", password="pw") and not view.reconnecting
    assert view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5)) == []
    (delay, resume), = view.take_outgoing()
    assert delay == 0 and resume == chat_pb2.C_JOIN_ROOM_REQ(room_id=1, resume=True, since_seq=3, epoch=77,
                                                             history=HISTORY_ON_JOIN)
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                                  epoch=77, head_seq=6, oldest_seq=1, recovered=True))
    assert lines == ["reconnected; 3 missed messages"]
    assert [view.receive(chat_ntf(f"m{s}", seq=s)) for s in (4, 5, 6)] == [
        ["[Room 1] User2: m4"], ["[Room 1] User2: m5"], ["[Room 1] User2: m6"]]
    assert view.stage is Stage.ROOM and view.awaiting is None and view.last_seq == 6


def test_a_resume_that_could_not_recover_says_so_and_shows_the_history_again():
    view = resumable()
    view.connection_lost()
    view.reconnected()
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5))
    view.take_outgoing()
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                                  epoch=78, head_seq=40, recovered=False))
    assert lines == ["reconnected; some messages could not be recovered"]
    assert view.receive(chat_ntf("m2 in the new epoch", seq=2)) == ["[Room 1] User2: m2 in the new epoch"]
    assert view.epoch == 78


def test_chat_lines_without_an_echo_are_sent_again_with_their_key_and_shown_once():
    view = resumable()
    sent = view.handle_input("are you there?").send
    view.connection_lost()
    view.reconnected()
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5))
    view.take_outgoing()
    view.receive(chat_pb2.S_JOIN_ROOM_RES(success=True, room=room_info(), members=[player(5, "User1")],
                                          epoch=77, head_seq=4, recovered=True))
    (_, again), = view.take_outgoing()
    assert again == sent  # same text, client_msg_id and idempotency key
    mine = chat_ntf("are you there?", sender=(5, "User1"), cmid=sent.client_msg_id, seq=4)
    assert view.receive(mine) == ["[Room 1] User1: are you there?"]  # the replay: it did arrive
    assert view.receive(mine) == []  # the resend's answer, the original again: not shown twice
    assert view.unanswered_chats == 0


def test_a_resume_of_a_room_being_restored_is_tried_again():
    view = resumable()
    view.connection_lost()
    view.reconnected()
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5))
    (_, first), = view.take_outgoing()
    lines = view.receive(chat_pb2.S_ERROR(code=chat_pb2.UNAVAILABLE, message="room 1 may be being restored"))
    assert lines == ["Error UNAVAILABLE: room 1 may be being restored; trying again..."]
    (delay, again), = view.take_outgoing()
    assert (delay, again) == (RESUME_RETRY, first) and view.awaiting is MsgId.S_JOIN_ROOM_RES


def test_a_room_gone_after_the_reconnection_is_back_to_the_menu():
    view = resumable()
    view.connection_lost()
    view.reconnected()
    view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5))
    lines = view.receive(chat_pb2.S_JOIN_ROOM_RES(success=False, message="room 1 not found"))
    assert lines == ["Reconnected, but room 1 could not be joined again: room 1 not found."]
    assert view.stage is Stage.MENU and not view.in_room


def test_reconnecting_outside_a_room_just_logs_in():
    view = logged_in(reconnect=True)
    view.connection_lost()
    view.reconnected()
    assert view.receive(chat_pb2.S_LOGIN_RES(success=True, player_id=5)) == ["Reconnected."]
    assert view.take_outgoing() == [] and view.stage is Stage.MENU


def test_giving_up_reconnecting_fails():
    view = resumable()
    view.connection_lost()
    assert view.reconnect_failed("connection refused") == ["Could not reconnect (connection refused). Exiting."]
    assert view.exit_status == EXIT_FAILURE


def test_a_failed_login_after_a_reconnection_ends_the_client():
    view = resumable()
    view.connection_lost()
    view.reconnected()
    lines = view.receive(chat_pb2.S_LOGIN_RES(success=False, message="wrong password"))
    assert lines == ["Could not log in again: wrong password. Exiting."] and view.exit_status == EXIT_FAILURE


def test_history_pages_back_from_the_oldest_message_shown():
    view = resumable(seen=0)
    for seq in (41, 42):
        view.receive(chat_ntf(f"m{seq}", seq=seq))
    step = view.handle_input("/history")
    assert step.send == chat_pb2.C_ROOM_HISTORY_REQ(before_seq=41, limit=20)
    assert step.lines == ["--- older messages ---"] and view.awaiting is MsgId.S_ROOM_HISTORY_RES
    assert view.receive(chat_ntf("m21", seq=21)) == ["[Room 1] User2: m21"]
    end = view.receive(chat_pb2.S_ROOM_HISTORY_RES(success=True, room_id=1, first_seq=21, last_seq=40, more=True))
    assert end == ["--- messages 21 to 40; /history for older ones ---"] and view.awaiting is None
    assert view.handle_input("/history").send.before_seq == 21
    end = view.receive(chat_pb2.S_ROOM_HISTORY_RES(success=True, room_id=1, first_seq=1, last_seq=20))
    assert end == ["--- messages 1 to 20; the beginning of the room ---"]
    step = view.handle_input("/history")
    assert step.send is None and "beginning" in step.lines[0]
    assert view.receive(chat_ntf("live", seq=43)) == ["[Room 1] User2: live"]


def test_a_failed_page_says_why():
    view = resumable()
    view.handle_input("/history")
    lines = view.receive(chat_pb2.S_ROOM_HISTORY_RES(success=False, message="older messages are unavailable"))
    assert lines == ["Could not page back: older messages are unavailable."] and view.awaiting is None
