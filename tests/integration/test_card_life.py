"""Card life: every transition, every refused transition, fees and payouts through the ledger,
and the versioned device blacklist (issue 3)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from campuscard.cards import lifecycle
from campuscard.config import Settings
from campuscard.db.pool import PgPool
from campuscard.ledger import postings
from campuscard.ledger.checks import check_ledger
from campuscard.platform.errors import Conflict, InsufficientFunds
from tests.support import ROOT, login, make_school, make_student, make_user
from tests.support_payments import device_call, make_cardholder, make_device, make_merchant


async def test_issue_opens_purses_books_deposit_and_activates_account(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person_id = await conn.fetchval(
            "INSERT INTO persons(school_id, kind, number, name) VALUES ($1, 'student', 'N1', '李四') "
            "RETURNING id",
            school.id,
        )
        card = await lifecycle.issue_card(
            conn,
            ROOT,
            person_id=person_id,
            number="12345678",
            uid="04a1b2c3",
            kind="student",
            deposit_fen=2_000,
            expires_on=dt.date.today() + dt.timedelta(days=365),
        )
        assert card["state"] == "active" and card["uid"] == "04A1B2C3"
        assert card["deposit"] == "20.00"
        assert (
            await conn.fetchval("SELECT account_status FROM persons WHERE id = $1", person_id)
            == "active"
        )
        assert set(await postings.purse_balances(conn, person_id)) == {"cash", "subsidy"}
        deposits = await postings.system_account(conn, school.id, "card_deposits")
        assert await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", deposits) == 2_000
        with pytest.raises(Conflict) as err:
            await lifecycle.issue_card(
                conn, ROOT, person_id=person_id, number="12345679", uid="04A1B2C4"
            )
        assert err.value.code == "CARD_ALREADY_HELD"
        events = (await lifecycle.get_card(conn, ROOT, card["id"]))["events"]
        assert [e["action"] for e in events] == ["issue"]
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'card.issue'") == 1
        )


async def test_each_transition_and_refusal(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person_id = await make_student(conn, school.id, "S1")
        card = await lifecycle.issue_card(
            conn, ROOT, person_id=person_id, number="20000001", uid="AA000001", activate=False
        )
        assert card["state"] == "issued"
        with pytest.raises(Conflict) as refused:
            await lifecycle.freeze_card(conn, ROOT, card["id"], reason="x")
        assert refused.value.code == "CARD_TRANSITION_REFUSED"
        assert (await lifecycle.activate_card(conn, ROOT, card["id"]))["state"] == "active"
        assert (await lifecycle.report_loss(conn, ROOT, card["id"]))["state"] == "lost"
        with pytest.raises(Conflict):
            await lifecycle.report_loss(conn, ROOT, card["id"])
        done = await lifecycle.unblock_card(conn, ROOT, card["id"], verification="ID card checked")
        assert done["state"] == "active"
        assert (await lifecycle.freeze_card(conn, ROOT, card["id"], reason="audit"))[
            "state"
        ] == "frozen"
        with pytest.raises(Conflict):
            await lifecycle.unblock_card(conn, ROOT, card["id"], verification="x")
        assert (await lifecycle.unfreeze_card(conn, ROOT, card["id"], reason="ok"))[
            "state"
        ] == "active"
        await conn.execute(
            "UPDATE cards SET expires_on = current_date - 1 WHERE id = $1", card["id"]
        )
        assert await lifecycle.expire_due_cards(conn, ROOT) == 1
        assert (await lifecycle.get_card(conn, ROOT, card["id"]))["state"] == "expired"
        with pytest.raises(Conflict):
            await lifecycle.activate_card(conn, ROOT, card["id"])
        events = (await lifecycle.get_card(conn, ROOT, card["id"]))["events"]
        assert [e["action"] for e in events] == [
            "issue",
            "activate",
            "report_loss",
            "unblock",
            "freeze",
            "unfreeze",
            "expire",
        ]
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE person_id = $1", person_id
            )
            >= 7
        )


async def test_replace_keeps_balance_charges_fee_and_moves_deposit(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await conn.execute(
            """UPDATE schools SET settings = '{"cards": {"replacement_fee": 1500}}'
               WHERE id = $1""",
            school.id,
        )
        person_id = await make_student(conn, school.id, "S1", cash=5_000, subsidy=1_000)
        old = await lifecycle.issue_card(
            conn, ROOT, person_id=person_id, number="30000001", uid="BB000001", deposit_fen=1_000
        )
        await lifecycle.report_loss(conn, ROOT, old["id"])
        new = await lifecycle.replace_card(conn, ROOT, old["id"], number="30000002", uid="BB000002")
        assert new["state"] == "active" and new["deposit"] == "10.00" and new["fee"] == "15.00"
        # fee from the cash purse; the subsidy and the rest of the cash stay with the account
        assert await postings.purse_balances(conn, person_id) == {"cash": 3_500, "subsidy": 1_000}
        fee_income = await postings.system_account(conn, school.id, "fee_income")
        assert (
            await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", fee_income) == 1_500
        )
        assert (await lifecycle.get_card(conn, ROOT, old["id"]))["replaced_by"] == new["id"]
        with pytest.raises(Conflict):
            await lifecycle.unblock_card(conn, ROOT, old["id"], verification="x")


async def test_cancel_pays_out_balance_and_deposit_and_closes_account(pool: PgPool) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person_id = await make_student(conn, school.id, "S1", cash=4_321, subsidy=100)
        card = await lifecycle.issue_card(
            conn, ROOT, person_id=person_id, number="40000001", uid="CC000001", deposit_fen=2_000
        )
        done = await lifecycle.cancel_card(
            conn, ROOT, card["id"], route="cash_desk", reason="graduated"
        )
        assert done["state"] == "cancelled"
        assert done["payout"] | {"tx_id": None} == {
            "route": "cash_desk",
            "balance": "44.21",
            "deposit": "20.00",
            "total": "64.21",
            "tx_id": None,
        }
        assert await postings.purse_balances(conn, person_id) == {"cash": 0, "subsidy": 0}
        assert (
            await conn.fetchval("SELECT account_status FROM persons WHERE id = $1", person_id)
            == "closed"
        )
        bank_person = await make_student(conn, school.id, "S2", cash=1_000)
        card2 = await lifecycle.issue_card(
            conn, ROOT, person_id=bank_person, number="40000002", uid="CC000002"
        )
        await lifecycle.cancel_card(conn, ROOT, card2["id"], route="bank_clearing", reason="left")
        payout = await conn.fetchrow("SELECT payload FROM outbox WHERE topic = 'payout.requested'")
        assert payout["payload"]["amount_fen"] == 1_000
        assert (await check_ledger(conn)).ok


async def test_cancelling_an_old_expired_card_keeps_the_account_of_the_card_in_use(
    pool: PgPool,
) -> None:
    """Found by tests/property/test_card_model.py: cancelling an expired card while the holder
    already had a new one paid out the whole balance and closed the account under the new
    card. Now only the old card's deposit is paid out."""
    async with pool.acquire() as conn:
        # given: an expired card with a deposit, and the new card the student uses now
        school = await make_school(conn)
        person_id = await make_student(conn, school.id, "S1", cash=3_000)
        old = await lifecycle.issue_card(
            conn, ROOT, person_id=person_id, number="41000001", uid="CD000001", deposit_fen=1_000
        )
        await conn.execute(
            "UPDATE cards SET expires_on = current_date - 1 WHERE id = $1", old["id"]
        )
        assert await lifecycle.expire_due_cards(conn, ROOT) == 1
        new = await lifecycle.issue_card(
            conn, ROOT, person_id=person_id, number="41000002", uid="CD000002"
        )
        # when: the old card is handed back and cancelled
        done = await lifecycle.cancel_card(
            conn, ROOT, old["id"], route="cash_desk", reason="old card handed back"
        )
        # then: its deposit is paid out; balance, account and the new card are untouched
        assert done["payout"] | {"tx_id": None} == {
            "route": "cash_desk",
            "balance": "0.00",
            "deposit": "10.00",
            "total": "10.00",
            "tx_id": None,
        }
        assert await postings.purse_balances(conn, person_id) == {"cash": 3_000, "subsidy": 0}
        assert (
            await conn.fetchval("SELECT account_status FROM persons WHERE id = $1", person_id)
            == "active"
        )
        assert (await lifecycle.get_card(conn, ROOT, new["id"]))["state"] == "active"
        assert (await check_ledger(conn)).ok


async def test_issue_paying_the_deposit_from_an_empty_purse_names_the_field(pool: PgPool) -> None:
    """Found by tests/property/test_card_model.py: the refusal named the ledger's "amount",
    a field the issue request does not have."""
    async with pool.acquire() as conn:
        school = await make_school(conn)
        person_id = await make_student(conn, school.id, "S1", cash=500)
        with pytest.raises(InsufficientFunds) as refused:
            await lifecycle.issue_card(
                conn,
                ROOT,
                person_id=person_id,
                number="42000001",
                uid="CE000001",
                deposit_fen=1_000,
                deposit_source="purse",
            )
        assert refused.value.field == "deposit_source"
        assert await conn.fetchval("SELECT count(*) FROM cards") == 0


async def test_blacklist_deltas_lost_in_unblocked_out_replaced_never_leaves(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id)
        _, a = await make_cardholder(conn, school.id, "A1")
        _, b = await make_cardholder(conn, school.id, "B1")

    async def fetch(since: int | None) -> dict:
        path = "/api/v1/terminal/blacklist" + ("" if since is None else f"?since={since}")
        r = await device_call(client, dev, "GET", path)
        assert r.status_code == 200, r.text
        return r.json()

    start = await fetch(None)
    assert start["full"] is True and start["cards"] == [] and start["version"] == 0

    async with pool.acquire() as conn:
        await lifecycle.report_loss(conn, ROOT, a["id"])
        await lifecycle.report_loss(conn, ROOT, b["id"])
    d1 = await fetch(start["version"])
    assert sorted(c["number"] for c in d1["added"]) == sorted([a["number"], b["number"]])
    assert d1["removed"] == []

    async with pool.acquire() as conn:
        await lifecycle.unblock_card(conn, ROOT, a["id"], verification="student ID checked")
        new_b = await lifecycle.replace_card(
            conn, ROOT, b["id"], number="77000001", uid="DD000001", fee_source="cash_desk"
        )
    d2 = await fetch(d1["version"])
    assert [c["number"] for c in d2["removed"]] == [a["number"]]
    assert d2["added"] == [
        {"number": b["number"], "uid": b["uid"], "reason": "replaced", "version": d2["version"]}
    ]
    full = await fetch(None)
    assert [c["number"] for c in full["cards"]] == [b["number"]]
    assert new_b["number"] not in [c["number"] for c in full["cards"]]

    # the replaced card never leaves, whatever happens to the account later
    async with pool.acquire() as conn:
        with pytest.raises(Conflict):
            await lifecycle.unblock_card(conn, ROOT, b["id"], verification="x")
    assert [c["number"] for c in (await fetch(None))["cards"]] == [b["number"]]
    # a device that asks from the future gets the full list
    assert (await fetch(999))["full"] is True


async def test_blacklist_reason_follows_a_blocked_card_and_its_removal_reaches_every_device(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    # found by tests/property/test_card_model.py: frozen -> lost kept the reason "frozen"
    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id)
        _, card = await make_cardholder(conn, school.id, "F1")

    async def fetch(since: int | None) -> dict:
        path = "/api/v1/terminal/blacklist" + ("" if since is None else f"?since={since}")
        r = await device_call(client, dev, "GET", path)
        assert r.status_code == 200, r.text
        return r.json()

    # given: a device that learned the card is frozen
    async with pool.acquire() as conn:
        await lifecycle.freeze_card(conn, ROOT, card["id"], reason="dispute")
    frozen = await fetch(0)
    assert [(c["number"], c["reason"]) for c in frozen["added"]] == [(card["number"], "frozen")]
    # when: the holder reports it lost
    async with pool.acquire() as conn:
        await lifecycle.report_loss(conn, ROOT, card["id"])
    # then: devices are told the new reason, in a delta and in the full list
    lost = await fetch(frozen["version"])
    assert lost["version"] > frozen["version"]
    assert [(c["number"], c["reason"]) for c in lost["added"]] == [(card["number"], "lost")]
    assert [c["reason"] for c in (await fetch(None))["cards"]] == ["lost"]
    # and once unblocked, a device still at the "frozen" version removes it too
    async with pool.acquire() as conn:
        await lifecycle.unblock_card(conn, ROOT, card["id"], verification="student ID checked")
    for since in (frozen["version"], lost["version"]):
        delta = await fetch(since)
        assert [c["number"] for c in delta["removed"]] == [card["number"]], since
        assert delta["added"] == []
    # a device that never had it learns nothing about it
    assert (await fetch(0))["removed"] == []


async def test_holder_reports_own_card_lost_but_not_someone_elses(
    pool: PgPool, client: httpx.AsyncClient, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        p1, c1 = await make_cardholder(conn, school.id, "S1")
        _p2, c2 = await make_cardholder(conn, school.id, "S2")
        await make_user(conn, "s1", "cardholder", school.id, person_id=p1)
    h = await login(client, "s1", "TST")
    other = await client.post(f"/api/v1/me/cards/{c2['id']}/report-loss", json={}, headers=h)
    mine = await client.post(
        f"/api/v1/me/cards/{c1['id']}/report-loss", json={"reason": "left it on the bus"}, headers=h
    )
    unblock = await client.post(
        f"/api/v1/admin/cards/{c1['id']}/unblock", json={"verification": "me"}, headers=h
    )
    assert other.status_code == 404
    assert mine.status_code == 200 and mine.json()["state"] == "lost"
    assert unblock.status_code == 403
    async with pool.acquire() as conn:
        channel = await conn.fetchval(
            "SELECT channel FROM card_events WHERE card_id = $1 AND action = 'report_loss'",
            c1["id"],
        )
        assert channel == "online"


async def test_card_center_api_issue_and_bad_input(pool: PgPool, client: httpx.AsyncClient) -> None:
    async with pool.acquire() as conn:
        school = await make_school(conn)
        await make_user(conn, "cc", "card_center", school.id)
        person_id = await make_student(conn, school.id, "S1")
    h = await login(client, "cc", "TST")
    bad = await client.post(
        "/api/v1/admin/schools/TST/cards",
        headers=h,
        json={"person_id": person_id, "number": "12ab", "uid": "04A1B2C3"},
    )
    ok = await client.post(
        "/api/v1/admin/schools/TST/cards",
        headers=h,
        json={"person_id": person_id, "number": "55500001", "uid": "04A1B2C3", "deposit": "10.00"},
    )
    lost = await client.post(
        f"/api/v1/admin/cards/{ok.json()['id']}/report-loss", headers=h, json={}
    )
    again = await client.post(
        f"/api/v1/admin/cards/{ok.json()['id']}/freeze", headers=h, json={"reason": "x"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "number"
    assert ok.status_code == 201, ok.text
    assert lost.json()["state"] == "lost"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CARD_TRANSITION_REFUSED"


async def test_worker_expires_cards_and_purges_old_nonces(pool: PgPool, settings: Settings) -> None:
    from campuscard.cards import jobs as card_jobs

    async with pool.acquire() as conn:
        school = await make_school(conn)
        merchant_id, _ = await make_merchant(conn, school.id)
        dev = await make_device(conn, settings, school.id, merchant_id)
        _, card = await make_cardholder(conn, school.id, "S1")
        await conn.execute(
            "UPDATE cards SET expires_on = current_date - 3 WHERE id = $1", card["id"]
        )
        await conn.execute(
            "INSERT INTO terminal_nonces(school_id, terminal_id, nonce, seen_at) VALUES "
            "($2, $1, 'old-nonce-000000001', now() - interval '1 hour'), "
            "($2, $1, 'new-nonce-000000001', now())",
            dev.id,
            school.id,
        )
    assert await card_jobs.expire_cards(pool, settings) == 1
    assert await card_jobs.purge_nonces(pool, settings) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM cards WHERE id = $1", card["id"]) == "expired"
        assert await conn.fetchval("SELECT count(*) FROM blacklist_entries WHERE permanent") == 1
        assert await conn.fetchval("SELECT nonce FROM terminal_nonces") == "new-nonce-000000001"
