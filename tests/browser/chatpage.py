"""The web chat page as the tests see it: what a user does (type, click, press Enter) and what the page shows.

Everything is read from the DOM, by the ids and data-* attributes the page
keeps for this (gateway/web/index.html, app.js); nothing peeks into the
page's JavaScript state, so a test passes only if a person would see the
same thing. Waits poll the DOM (Selenium's WebDriverWait), never sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")

TIMEOUT = 20.0  # generous: two cores shared with other engineers' test runs

# (seq, sender name, text) of every chat message shown, in the order shown
_MESSAGES_JS = """
return [...document.querySelectorAll('#messages [data-testid="message"]')].map(e => [
  Number(e.dataset.seq), e.dataset.senderName, e.querySelector('.msg-text').textContent,
  e.classList.contains('mine')]);
"""
_NOTICES_JS = """
return [...document.querySelectorAll('#messages [data-testid="notice"]')].map(e => [
  e.dataset.kind, e.querySelector('.notice-text').textContent]);
"""
_MEMBERS_JS = """
return [...document.querySelectorAll('#member-list [data-testid="member"] .member-name')].map(e => e.textContent);
"""
_STREAM_JS = """
return [...document.querySelectorAll('#messages > li')].map(e => e.dataset.testid === 'message'
  ? 'message:' + e.dataset.seq : 'notice:' + e.querySelector('.notice-text').textContent);
"""


class ChatPage:
    def __init__(self, driver, url: str) -> None:
        self.driver = driver
        self.url = url

    # ---- waiting -----------------------------------------------------------------------------------
    def wait(self, probe: Callable[[], T], what: str, timeout: float = TIMEOUT) -> T:
        """probe()'s first truthy value; on timeout the failure says what was awaited and what the page showed."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: probe())
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.describe()}") from None

    def describe(self) -> str:
        """What the page shows, for a failure message."""
        try:
            console = [entry["message"] for entry in self.driver.get_log("browser")][-10:]
        except Exception as exc:  # noqa: BLE001 - a report of a failure must not fail itself
            console = [f"(no console: {exc})"]
        return (f"page {self.driver.current_url}: status={self.status()!r} error={self.error()!r} "
                f"login_error={self.login_error()!r} room={self.room_id()!r} members={self.members()} "
                f"stream={self.driver.execute_script(_STREAM_JS)[-12:]} console={console}")

    # ---- reading -----------------------------------------------------------------------------------
    def by_id(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def shown(self, element_id: str) -> bool:
        return self.by_id(element_id).is_displayed()

    def text_if_shown(self, element_id: str) -> str:
        element = self.by_id(element_id)
        return element.text if element.is_displayed() else ""

    def status(self) -> tuple[str, str]:
        """(data-state, text) of the connection indicator."""
        element = self.by_id("conn-status")
        return element.get_attribute("data-state"), self.by_id("conn-text").text

    def error(self) -> str:
        return self.text_if_shown("error-banner")

    def login_error(self) -> str:
        return self.text_if_shown("login-error")

    def room_id(self) -> str:
        return self.by_id("room").get_attribute("data-room-id") or ""

    def messages(self) -> list[list]:
        return self.driver.execute_script(_MESSAGES_JS)

    def notices(self) -> list[list[str]]:
        return self.driver.execute_script(_NOTICES_JS)

    def members(self) -> list[str]:
        return self.driver.execute_script(_MEMBERS_JS)

    def room_ids_listed(self) -> list[str]:
        return [e.get_attribute("data-room-id") for e in self.driver.find_elements(
            By.CSS_SELECTOR, '#room-list [data-testid="room-item"]')]

    # ---- doing -------------------------------------------------------------------------------------
    def open(self) -> ChatPage:
        self.driver.get(self.url)
        self.wait(lambda: self.shown("login-form"), "the login form")
        return self

    def submit_login(self, name: str, password: str = "pw") -> None:
        for element_id, value in (("login-name", name), ("login-password", password)):
            field = self.by_id(element_id)
            field.clear()
            field.send_keys(value)
        self.by_id("login-submit").click()

    def login(self, name: str, password: str = "pw") -> None:
        self.submit_login(name, password)
        self.wait(lambda: self.shown("chat-view") and self.status()[0] == "online", f"{name} logged in")
        assert self.by_id("me-name").text == name

    def create_room(self, name: str) -> str:
        self.by_id("create-room-name").send_keys(name)
        self.by_id("create-room-submit").click()
        room_id = self.wait(self.room_id, f"the room {name!r} created")
        assert self.by_id("room-title").text == name
        return room_id

    def join_room(self, room_id: str) -> None:
        """Join by typing the room's id."""
        self.by_id("join-room-id").send_keys(room_id)
        self.by_id("join-room-submit").click()

    def join_from_list(self, room_id: str) -> None:
        """Join by refreshing the room list and clicking the room, as most people would."""
        self.by_id("refresh-rooms").click()
        self.wait(lambda: room_id in self.room_ids_listed(), f"room {room_id} in the list")
        self.driver.find_element(By.CSS_SELECTOR, f'#room-list [data-room-id="{room_id}"] button').click()
        self.wait(lambda: self.room_id() == room_id, f"in room {room_id}")

    def say(self, text: str) -> None:
        """Type a message and press Enter (the page sends on Enter)."""
        box = self.by_id("composer-input")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
        self.wait(lambda: box.get_attribute("value") == "", f"the composer to clear after sending {text!r}")

    def wait_messages(self, count: int) -> list[list]:
        return self.wait(lambda: len(m := self.messages()) >= count and m, f"{count} messages on the page")

    def wait_notice(self, kind: str, text: str, count: int = 1) -> None:
        self.wait(lambda: self.notices().count([kind, text]) >= count, f"{count}x the notice {kind}: {text!r}")
