"""AppriseSender against real apprise: what it reports, and that no secret is in it."""

from __future__ import annotations

import copy
import json
import time
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import pytest

from alerting.notify import AppriseSender, SendResult
from alerting.notify.apprise_sender import _parsed
from alerting.transition import Severity
from tests.support.notify import Receiver
from tests.support.services import free_port


async def test_sends_title_body_and_type(receiver: Receiver) -> None:
    result = await AppriseSender().send([receiver.url("x")], "[FIRING warning] r s", "body °C\nline 2",
                                        severity=Severity.WARNING)
    assert result.ok and result.error is None
    assert [(m["path"], m["title"], m["message"], m["type"]) for m in receiver.received] == [
        ("/x", "[FIRING warning] r s", "body °C\nline 2", "warning")]


async def test_resolved_is_sent_as_success(receiver: Receiver) -> None:
    await AppriseSender().send([receiver.url()], "t", "b", severity=Severity.CRITICAL, resolved=True)
    assert receiver.received[0]["type"] == "success"


async def test_url_apprise_does_not_know_is_a_clear_failure_without_its_secret() -> None:
    result = await AppriseSender().send(["bogus://user:hunter2@example.com/token123"], "t", "b",
                                        severity=Severity.INFO)
    assert not result.ok
    assert result.error == "apprise does not understand the URL bogus://example.com/***"


async def test_unreachable_receiver_is_a_failure_without_its_secret() -> None:
    url = f"json://ana:s3cretpass@127.0.0.1:{free_port()}/hook-token-77"
    result = await AppriseSender(timeout=5).send([url], "t", "b", severity=Severity.CRITICAL)
    assert not result.ok and result.error
    assert "s3cretpass" not in result.error and "hook-token-77" not in result.error
    assert "127.0.0.1" in result.error


async def test_server_error_is_reported_with_apprise_words(receiver: Receiver) -> None:
    receiver.fail = 1
    result = await AppriseSender().send([receiver.url()], "t", "b", severity=Severity.INFO)
    assert result == SendResult(False, "Failed to send JSON POST notification: Internal server error., error=500.")


@pytest.mark.parametrize(("scheme", "decode"), [
    ("json", lambda b: (json.loads(b)["title"], json.loads(b)["message"])),
    ("form", lambda b: (parse_qs(b.decode())["title"][0], parse_qs(b.decode())["message"][0])),
    ("xml", lambda b: (_xml_text(b, "Subject"), _xml_text(b, "Message"))),
])
async def test_webhook_flavours_carry_title_and_body(receiver: Receiver, scheme: str, decode: Any) -> None:
    title, body = "[FIRING critical] freezer-warm freezer-1/t0/temperature", "freezer-1 is at -12.4 °C\n<&>"
    result = await AppriseSender().send([f"{scheme}://127.0.0.1:{receiver.port}/hook"], title, body,
                                        severity=Severity.CRITICAL)
    assert result.ok
    [(request_line, raw)] = receiver.raw
    assert request_line.startswith("POST /hook")
    assert decode(raw) == (title, body)


def _xml_text(raw: bytes, tag: str) -> str:
    root = ElementTree.fromstring(raw)
    [node] = [n for n in root.iter() if n.tag.rsplit("}", 1)[-1] == tag]
    return node.text or ""


async def test_one_configured_string_of_two_urls_reaches_both(receiver: Receiver) -> None:
    # apprise takes several URLs in one string (comma or space); the parsed form kept between messages does too
    urls = [f"{receiver.url('a')}, {receiver.url('b')}"]
    for i in range(2):
        assert (await AppriseSender().send(urls, f"t{i}", "b", severity=Severity.INFO)).ok
    assert sorted((m["path"], m["title"]) for m in receiver.received) == [
        ("/a", "t0"), ("/a", "t1"), ("/b", "t0"), ("/b", "t1")]


async def test_no_throttle_carries_from_one_message_to_the_next(receiver: Receiver) -> None:
    # ntfy's plugin waits 5.5 s between two requests of one plugin object: every message gets new objects, so
    # the second alert to the same receiver is not held back by the first
    sender = AppriseSender()
    url = f"ntfy://127.0.0.1:{receiver.port}/freezers"
    started = time.monotonic()
    for i in range(3):
        assert (await sender.send([url], f"t{i}", "b", severity=Severity.CRITICAL)).ok
    assert time.monotonic() - started < 3.0
    assert [m["title"] for m in receiver.received] == ["t0", "t1", "t2"]


async def test_a_message_leaves_the_kept_parse_as_it_was(receiver: Receiver) -> None:
    url = receiver.url("kept")
    await AppriseSender().send([url], "t", "b", severity=Severity.INFO)
    kept = copy.deepcopy(_parsed(url))
    await AppriseSender().send([url], "t2", "b", severity=Severity.WARNING, resolved=True)
    assert _parsed(url) == kept and kept is not None and kept[0]["schema"] == "json"
    assert [m["title"] for m in receiver.received] == ["t", "t2"]
