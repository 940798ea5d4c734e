"""A bank payout started by another use case reports back through a handler registered by
origin, so the bank link never imports its callers (leaving school closes the account; a payroll
payout tells the staff member their salary is paid)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from campuscard.moneyflows import bank_link


@pytest.mark.parametrize(
    "entry",
    [
        "from campuscard.platform.tasks import load_job_modules; load_job_modules()",
        "import campuscard.app",
    ],
)
def test_every_process_that_can_post_a_payout_knows_the_payout_handlers(entry: str) -> None:
    # the worker loads the job modules; the app serves the routes: either alone registers them
    code = (
        f"{entry}\n"
        "from campuscard.moneyflows import bank_link\n"
        "print(sorted(bank_link.PAYOUT_POSTED))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "['leaving', 'payroll']"


def test_a_payout_of_an_unknown_origin_is_not_posted_half_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a payout whose origin registered nothing
    monkeypatch.setattr(bank_link, "PAYOUT_POSTED", {})
    transfer: dict[str, Any] = {
        "id": 1,
        "school_id": 1,
        "person_id": 1,
        "direction": "payout",
        "origin": "leaving",
        "amount": 100,
    }
    # when the bank's approval is booked, then it fails before anything else is written
    with pytest.raises(RuntimeError, match="no payout handler registered for origin 'leaving'"):
        asyncio.run(bank_link._after_posted(None, transfer))  # type: ignore[arg-type]


def test_a_registered_handler_runs_with_the_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(conn: Any, transfer: dict[str, Any]) -> None:
        seen.append(transfer)
        raise LookupError("stop before the notice")  # the notice needs a database

    monkeypatch.setattr(bank_link, "PAYOUT_POSTED", {})
    bank_link.on_payout_posted("test", handler)
    transfer = {"id": 2, "direction": "payout", "origin": "test", "amount": 5}
    with pytest.raises(LookupError):
        asyncio.run(bank_link._after_posted(None, transfer))  # type: ignore[arg-type]
    assert seen == [transfer]
