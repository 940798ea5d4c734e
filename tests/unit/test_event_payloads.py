"""Payments' live events go out many per NOTIFY: JSON arrays of whole events under PostgreSQL's
payload limit, which the listener takes apart again in order (platform/event_batch.py)."""

from __future__ import annotations

from campuscard.platform import event_batch, live


def test_events_are_packed_in_order_into_arrays_under_the_limit() -> None:
    # given 200 payments' events, about 200 bytes each, and one of 9,000 bytes
    events = [
        {"type": "payment", "person_id": i, "merchant": "第一食堂", "amount": f"{i}.00"}
        for i in range(200)
    ]
    events.insert(100, {"type": "payment", "note": "x" * 9_000})

    # when they are packed
    payloads = event_batch.payloads(events)

    # then every payload is an array under the limit (the big event alone in its own),
    # and the listener gets every event back, in order
    assert len(payloads) > 2
    for payload in payloads:
        assert payload.startswith("[")
        assert (
            len(payload.encode()) < event_batch.MAX_PAYLOAD_BYTES
            or len(live.events_of(payload)) == 1
        )
    assert [e for p in payloads for e in live.events_of(p)] == events


def test_a_single_event_and_junk_as_the_listener_reads_them() -> None:
    assert live.events_of('{"type": "payment", "amount": "1.00"}') == [
        {"type": "payment", "amount": "1.00"}
    ]
    assert live.events_of("not json") == []
    assert live.events_of('[1, {"type": "x"}, "y"]') == [{"type": "x"}]
    assert event_batch.payloads([]) == []
