"""Credit lines: a staff member pays below zero down to the limit and no further; credit pays
purchases, never a withdrawal; a top-up repays the credit first; credit still owed after the
repay days is overdue — monitoring alerts, the holder is told, no further credit is given (a
top-up cannot be spent as new credit) — and once repaid the line is back."""

from __future__ import annotations

import httpx
import pytest

from campuscard.config import Settings
from campuscard.credit import jobs, lines
from campuscard.db.pool import Conn, PgPool
from campuscard.ledger import postings
from campuscard.monitoring import school_rules
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import DomainError, InsufficientFunds
from tests.support import fund, make_school
from tests.support_payments import make_cardholder, make_device, make_merchant, pay


async def test_credit_is_used_for_purchases_repaid_first_and_stopped_when_overdue(
    client: httpx.AsyncClient, pool: PgPool, conn: Conn, settings: Settings
) -> None:
    school = await make_school(conn)
    merchant, outlet = await make_merchant(conn, school.id)
    till = await make_device(conn, settings, school.id, merchant, outlet_id=outlet)
    staff, card = await make_cardholder(conn, school.id, "T001", cash=1_000)
    _student, student_card = await make_cardholder(conn, school.id, "S001", cash=1_000)
    finance = Actor("fin", school_id=school.id, grants=frozenset({Grant("settlement", school.id)}))
    admin = Actor("adm", school_id=school.id, grants=frozenset({Grant("school_admin", school.id)}))
    await school_rules.do_set_rule(conn, admin, school.id, "arrears", enabled=True, thresholds={})
    # given a credit line of 50.00, repaid within 30 days
    line = await lines.do_set_credit_line(
        conn, finance, school.id, staff, credit_limit=5_000, repay_days=30
    )
    assert (line.credit_limit, line.credit_left, line.credit_used) == ("50.00", "50.00", "0.00")
    with pytest.raises(DomainError) as not_finance:
        await lines.do_set_credit_line(
            conn, Actor("x", school_id=school.id), school.id, staff, credit_limit=1, repay_days=1
        )
    assert not_finance.value.status == 403
    # when the staff member pays 40.00 with 10.00 on the card: 30.00 of credit
    paid = await pay(client, till, card, "40.00")
    assert paid.status_code == 200, paid.text
    assert (await lines.statement_of(conn, school.id, staff)).credit_used == "30.00"
    too_far = await pay(client, till, card, "25.00")
    assert too_far.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    # a student without a line still stops at zero
    no_line = await pay(client, till, student_card, "10.01")
    assert no_line.json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    # credit never leaves as cash
    purse = (await postings.open_purses(conn, school.id, staff))["cash"]
    desk = await postings.system_account(conn, school.id, "cash_desk")
    with pytest.raises(InsufficientFunds):
        async with conn.transaction():
            await postings.post(
                conn,
                school_id=school.id,
                kind="counter_withdrawal",
                legs=postings.legs_move(purse, desk, 100),
            )
    # the clock notes the debt; 31 days on it is overdue: alert, notice, no further credit
    assert (await jobs.run_credit_pass(pool)).went_into_debt == 1
    await conn.execute(
        "UPDATE credit_lines SET in_debt_since = now() - interval '31 days'"
        " WHERE school_id = $1 AND person_id = $2",
        school.id,
        staff,
    )
    assert (await jobs.run_credit_pass(pool)).fell_overdue == 1
    alerts = await conn.fetch(
        "SELECT rule FROM monitoring_alerts WHERE school_id = $1 AND person_id = $2",
        school.id,
        staff,
    )
    assert [a["rule"] for a in alerts] == ["arrears"]
    notes = await conn.fetch(
        "SELECT kind FROM notifications WHERE school_id = $1 AND person_id = $2", school.id, staff
    )
    assert "credit_overdue" in [n["kind"] for n in notes]
    statement = await lines.statement_of(conn, school.id, staff)
    assert (statement.state, statement.credit_used, statement.credit_left) == (
        "overdue",
        "30.00",
        "0.00",
    )
    assert (await pay(client, till, card, "0.01")).json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    # a top-up of 20.00 repays credit first and cannot be spent as new credit
    await fund(conn, school.id, staff, cash=2_000)
    async with conn.transaction():
        await lines.after_topup(conn, school.id, staff)  # every top-up path calls it
    assert (await lines.statement_of(conn, school.id, staff)).credit_used == "10.00"
    assert (await pay(client, till, card, "0.01")).json()["error"]["code"] == "INSUFFICIENT_FUNDS"
    # repaid in full: the line is back
    await fund(conn, school.id, staff, cash=1_500)
    assert (await jobs.run_credit_pass(pool)).repaid == 1
    back = await lines.statement_of(conn, school.id, staff)
    assert (back.state, back.balance, back.credit_left) == ("active", "5.00", "50.00")
    assert (await pay(client, till, card, "20.00")).status_code == 200
    # the limit cannot be set below what is owed
    with pytest.raises(DomainError) as below:
        await lines.do_set_credit_line(
            conn, finance, school.id, staff, credit_limit=1_000, repay_days=30
        )
    assert below.value.code == "CREDIT_BELOW_OWED"
