"""Email to a real SMTP server (aiosmtpd on loopback) that notes when and on which connection each
message arrived: connections are reused, a dropped one is replaced, and a gateway's rate is kept."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from limits import parse

from activities.channels import (
    EmailChannel,
    OutgoingMessage,
    RateLimitedChannel,
    Recipient,
    SmtpSettings,
)
from tools.smtp_sink import free_port

PATIENT = Recipient(email="patient@example.test", phone=None)


class Gateway:
    """Keeps (arrival time, client port) per message: the port tells the connections apart.

    A message whose subject says "slow" takes half a second in transit before the gateway counts it,
    as a large message or a congested link does."""

    def __init__(self):
        self.arrivals: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        if b"slow" in envelope.content:
            await asyncio.sleep(0.5)
        with self._lock:
            self.arrivals.append((time.monotonic(), session.peer[1]))
        return "250 accepted"


@pytest.fixture
def gateway():
    handler = Gateway()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def message(n: int, subject: str = "Check-in") -> OutgoingMessage:
    return OutgoingMessage(subject=f"{subject} {n}", body="How are you today?", message_id=f"<m{n}@carepath>")


def most_in_any_second(arrivals: list[float]) -> int:
    arrivals = sorted(arrivals)
    return max(sum(1 for later in arrivals[i:] if later - earlier < 1) for i, earlier in enumerate(arrivals))


async def test_messages_share_a_few_open_connections(gateway):
    handler, controller = gateway
    channel = EmailChannel(SmtpSettings(host="127.0.0.1", port=controller.port, sender="carepath <c@example.test>",
                                        connections=3))
    await asyncio.gather(*(channel.send(PATIENT, message(n)) for n in range(30)))
    assert len(handler.arrivals) == 30
    assert 1 <= len({port for _, port in handler.arrivals}) <= 3


async def test_a_connection_the_server_dropped_is_replaced_not_reused():
    first = Gateway()
    port = free_port()
    server = Controller(first, hostname="127.0.0.1", port=port)
    server.start()
    channel = EmailChannel(SmtpSettings(host="127.0.0.1", port=port, sender="carepath <c@example.test>", connections=1))
    await channel.send(PATIENT, message(1))
    server.stop()  # every client connection closed, as a server's idle timeout or restart does
    second = Gateway()
    server = Controller(second, hostname="127.0.0.1", port=port)
    server.start()
    try:
        await channel.send(PATIENT, message(2))
    finally:
        server.stop()
    assert len(first.arrivals) == 1 and len(second.arrivals) == 1


async def test_a_gateway_never_gets_more_than_its_rate_in_any_second(gateway):
    handler, controller = gateway
    per_second = 20
    channel = RateLimitedChannel(
        EmailChannel(SmtpSettings(host="127.0.0.1", port=controller.port, sender="carepath <c@example.test>")),
        parse(f"{per_second}/second"))
    began = time.monotonic()
    await asyncio.gather(*(channel.send(PATIENT, message(n)) for n in range(3 * per_second)))
    assert len(handler.arrivals) == 3 * per_second
    assert most_in_any_second([at for at, _ in handler.arrivals]) == per_second
    # And the burst drained at the rate, not slower: three windows' worth in about two seconds.
    assert time.monotonic() - began < 4


async def test_slow_sends_do_not_arrive_together_with_the_next_windows_quick_ones(gateway):
    """Counted only when they start, a window's slow sends (0.5 s in transit) and the next window's
    quick ones would reach the gateway within the same second: twice the limit."""
    handler, controller = gateway
    per_second = 10
    channel = RateLimitedChannel(
        EmailChannel(SmtpSettings(host="127.0.0.1", port=controller.port, sender="carepath <c@example.test>",
                                  connections=2 * per_second)),
        parse(f"{per_second}/second"))
    slow = [channel.send(PATIENT, message(n, "slow")) for n in range(per_second)]
    quick = [channel.send(PATIENT, message(n)) for n in range(per_second, 2 * per_second)]
    await asyncio.gather(*slow, *quick)
    assert len(handler.arrivals) == 2 * per_second
    assert most_in_any_second([at for at, _ in handler.arrivals]) == per_second
