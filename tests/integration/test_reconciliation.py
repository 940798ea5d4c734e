"""Reconciliation: every case (matched, missing on either side, amount differs) ends matched
or in suspense; resolving the cases empties suspense; the clearing accounts return to zero."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from campuscard.adapters.provider.simulator import CHINA, ProviderSimulator, SimOrder
from campuscard.ledger import checks, postings
from campuscard.platform.actors import Actor, Grant
from campuscard.platform.errors import Conflict, Forbidden, InsufficientFunds, ValidationFailed
from campuscard.settlement import reconciliation
from tests.support import make_school, make_student


def operator(school_id: int, user_id: int, name: str) -> Actor:
    return Actor(name=name, user_id=user_id, grants=frozenset({Grant("settlement", school_id)}))


async def make_operators(conn: asyncpg.Connection[Any], school_id: int) -> tuple[Actor, Actor]:
    from tests.support import make_user

    a = await make_user(conn, "recon-a", "settlement", school_id)
    b = await make_user(conn, "recon-b", "settlement", school_id)
    return operator(school_id, a, "recon-a"), operator(school_id, b, "recon-b")


async def load(
    conn: asyncpg.Connection[Any], school_id: int, person_id: int, fen: int, rrn: str
) -> None:
    """A bank-card -> campus-card load as the bank link books it."""
    clearing = await postings.system_account(conn, school_id, "bank_clearing")
    purse = (await postings.open_purses(conn, school_id, person_id))["cash"]
    async with conn.transaction():
        await postings.post(
            conn,
            school_id=school_id,
            kind="bank_load",
            legs=postings.legs_move(clearing, purse, fen),
            ref=f"bank_transfer:{rrn}",
            meta={"rrn": rrn},
        )


async def system(conn: asyncpg.Connection[Any], school_id: int, code: str) -> int:
    bal: int = await conn.fetchval(
        "SELECT balance FROM accounts WHERE school_id = $1 AND system_code = $2", school_id, code
    )
    return bal


def bank_file(day: date, lines: list[tuple[str, str, int]]) -> bytes:
    stamp = day.strftime("%Y%m%d")
    body = [
        f"D|{ref}|{i:06d}|{kind}|{fen}|A{i:05d}|{stamp}120000"
        for i, (ref, kind, fen) in enumerate(lines, start=1)
    ]
    ins = sum(f for _, k, f in lines if k in ("LOAD", "PAYOUT_REV", "SETTLE_REV"))
    outs = sum(f for _, k, f in lines if k not in ("LOAD", "PAYOUT_REV", "SETTLE_REV"))
    text = "\n".join([f"H|CAMPUSBANK|{stamp}|{len(lines)}", *body, f"T|{ins}|{outs}|{ins - outs}"])
    return (text + "\n").encode()


async def test_every_bank_case_ends_matched_or_in_suspense_and_resolving_empties_it(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given our loads and the bank's statement of the same day
    school = await make_school(conn)
    first, second = await make_operators(conn, school.id)
    alice = await make_student(conn, school.id, "S1")
    bob = await make_student(conn, school.id, "S2")
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    await load(conn, school.id, alice, 10_000, "000000000001")  # matched
    await load(conn, school.id, alice, 5_000, "000000000002")  # bank does not have it
    await load(conn, school.id, bob, 3_000, "000000000003")  # bank says 35.00
    statement = bank_file(
        day,
        [
            ("000000000001", "LOAD", 10_000),
            ("000000000003", "LOAD", 3_500),
            ("000000000004", "LOAD", 2_000),  # we do not have it
            ("000000000005", "LOAD", 800),  # loaded and reversed at the bank: nets to zero
            ("000000000005", "LOAD_REV", 800),
        ],
    )

    # when it is imported
    result = await reconciliation.do_import_statement(
        pool, first, school.id, source="bank", content=statement, file_name="bank.txt"
    )

    # then every reference is matched or a case with its reason, and suspense holds the cases
    assert result["matched"] == 2
    reasons = {c["reference"]: (c["reason"], c["difference"]) for c in result["cases"]}
    assert reasons == {
        "000000000002": ("missing_theirs", "-50.00"),
        "000000000003": ("amount_differs", "5.00"),
        "000000000004": ("missing_ours", "20.00"),
    }
    assert await system(conn, school.id, "bank_clearing") == 0
    assert await system(conn, school.id, "suspense") == -5_000 + 500 + 2_000
    assert await system(conn, school.id, "bank_account") == -(10_000 + 3_500 + 2_000)

    # and importing the same file again changes nothing; another file for the day is refused
    again = await reconciliation.do_import_statement(
        pool, first, school.id, source="bank", content=statement
    )
    assert again["replayed"] is True and again["id"] == result["id"]
    with pytest.raises(Conflict):
        await reconciliation.do_import_statement(
            pool, first, school.id, source="bank", content=bank_file(day, [])
        )

    # when the operators resolve each case
    cases = {c["reference"]: c["id"] for c in result["cases"]}
    bob_cash = (await postings.open_purses(conn, school.id, bob))["cash"]
    alice_cash = (await postings.open_purses(conn, school.id, alice))["cash"]
    # the 2.00 load we missed belongs to Bob: post it to his purse
    await reconciliation.do_resolve_case(
        pool,
        first,
        school.id,
        cases["000000000004"],
        action="post",
        target_account=bob_cash,
        note="Bob's load, our booking was lost",
    )
    # the 50.00 the bank never received: take it back from Alice
    await reconciliation.do_resolve_case(
        pool,
        first,
        school.id,
        cases["000000000002"],
        action="post",
        target_account=alice_cash,
        note="load failed at the bank",
    )
    # the 5.00 surplus: write off, which needs a second operator
    pending = await reconciliation.do_resolve_case(
        pool,
        first,
        school.id,
        cases["000000000003"],
        action="write_off",
        note="bank fee difference",
    )
    assert pending["status"] == "pending_approval"
    assert await system(conn, school.id, "suspense") == 500
    with pytest.raises(Forbidden):
        await reconciliation.do_decide_write_off(
            pool, first, school.id, cases["000000000003"], approve=True, note="me again"
        )
    done = await reconciliation.do_decide_write_off(
        pool, second, school.id, cases["000000000003"], approve=True, note="checked"
    )

    # then suspense and the clearing account are empty and the ledger holds
    assert done["status"] == "resolved" and done["resolution"] == "write_off"
    assert await system(conn, school.id, "suspense") == 0
    assert await system(conn, school.id, "bank_clearing") == 0
    assert await system(conn, school.id, "recon_writeoff") == 500
    assert await postings.purse_balances(conn, bob) == {"cash": 3_000 + 2_000, "subsidy": 0}
    assert await postings.purse_balances(conn, alice) == {"cash": 10_000, "subsidy": 0}
    assert (await reconciliation.balances(conn, school.id))["open_cases"] == 0
    report = await checks.check_ledger(conn)
    assert report.ok, report.violations


async def test_a_load_booked_after_the_statement_closes_its_case_late(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given the bank's statement shows a load we only book after it was imported
    school = await make_school(conn)
    first, _ = await make_operators(conn, school.id)
    alice = await make_student(conn, school.id, "S1")
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    r1 = await reconciliation.do_import_statement(
        pool,
        first,
        school.id,
        source="bank",
        content=bank_file(day - timedelta(days=1), [("000000000009", "LOAD", 1_500)]),
    )
    assert [c["reason"] for c in r1["cases"]] == ["missing_ours"]
    await load(conn, school.id, alice, 1_500, "000000000009")

    # when the next statement (without it) is imported
    r2 = await reconciliation.do_import_statement(
        pool, first, school.id, source="bank", content=bank_file(day, [])
    )

    # then the open case is matched late and nothing is left in suspense or clearing
    assert r2["matched_late"] == 1 and r2["cases"] == []
    assert await system(conn, school.id, "suspense") == 0
    assert await system(conn, school.id, "bank_clearing") == 0
    case = (await reconciliation.list_cases(conn, school.id))[0]
    assert case["resolution"] == "matched_late"


async def test_provider_bill_from_the_simulator_reconciles_and_a_surplus_is_refunded(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given two provider top-ups the simulator was paid for, one of which we never booked
    school = await make_school(conn)
    first, _ = await make_operators(conn, school.id)
    alice = await make_student(conn, school.id, "S1")
    sim = ProviderSimulator({"1900000109": "k" * 32})
    for no, fee in (("TOPUP0001", 5_000), ("TOPUP0002", 1_234)):
        sim.orders[no] = SimOrder(no, "1900000109", f"wx{no}", fee, "充值", "http://127.0.0.1/n")
        sim.pay(no)
    clearing = await postings.system_account(conn, school.id, "provider_clearing")
    purse = (await postings.open_purses(conn, school.id, alice))["cash"]
    async with conn.transaction():
        await postings.post(
            conn,
            school_id=school.id,
            kind="topup_online",
            legs=postings.legs_move(clearing, purse, 5_000),
            ref="provider_order:1",
            actor="provider",
            meta={"out_trade_no": "TOPUP0001"},
        )
    day = datetime.now(UTC).astimezone(CHINA).date()
    bill = sim.bill("1900000109", day.strftime("%Y%m%d"))

    # when the bill is imported
    result = await reconciliation.do_import_statement(
        pool, first, school.id, source="provider", content=bill.encode(), statement_date=day
    )

    # then one matched, one surplus in suspense
    assert result["matched"] == 1
    [case] = result["cases"]
    assert (case["reference"], case["reason"], case["difference"]) == (
        "TOPUP0002",
        "missing_ours",
        "12.34",
    )
    assert await system(conn, school.id, "provider_clearing") == 0

    # when the surplus is refunded to the payer through the provider
    await reconciliation.do_resolve_case(
        pool, first, school.id, case["id"], action="refund", note="no order on our side"
    )

    # then suspense is empty, the refund waits in clearing for the provider's next bill,
    # and the refund request is in the outbox
    assert await system(conn, school.id, "suspense") == 0
    assert await system(conn, school.id, "provider_clearing") == 1_234
    payload = await conn.fetchval("SELECT payload FROM outbox WHERE topic = 'provider.refund'")
    assert payload["out_trade_no"] == "TOPUP0002" and payload["refund_fee"] == 1_234
    # the next bill shows the refund and it matches
    sim.orders["TOPUP0002"].refunds["TOPUP0002RC1"] = 1_234
    next_bill = sim.bill("1900000109", day.strftime("%Y%m%d")).replace("TOPUP0001", "TOPUPXXXX")
    lines = [ln for ln in next_bill.splitlines() if "REFUND" in ln or ln.startswith("trade_time")]
    text = "\n".join([*lines, "# total_paid=0,total_refunded=1234,net=-1234"]) + "\n"
    r2 = await reconciliation.do_import_statement(
        pool,
        first,
        school.id,
        source="provider",
        content=text.encode(),
        statement_date=day + timedelta(days=1),
    )
    assert r2["matched"] == 1 and r2["cases"] == []
    assert await system(conn, school.id, "provider_clearing") == 0


async def test_a_provider_bill_with_a_wrong_net_is_refused_and_leaves_the_day_open(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    # given: the provider's bill of a day whose trailer's net is wrong
    school = await make_school(conn)
    first, _ = await make_operators(conn, school.id)
    sim = ProviderSimulator({"1900000109": "k" * 32})
    sim.orders["TOPUP0003"] = SimOrder(
        "TOPUP0003", "1900000109", "wxTOPUP0003", 2_500, "充值", "http://127.0.0.1/n"
    )
    sim.pay("TOPUP0003")
    day = datetime.now(UTC).astimezone(CHINA).date()
    bill = sim.bill("1900000109", day.strftime("%Y%m%d"))
    assert "net=2500" in bill
    # when: it is imported
    with pytest.raises(ValidationFailed) as err:
        await reconciliation.do_import_statement(
            pool,
            first,
            school.id,
            source="provider",
            content=bill.replace("net=2500", "net=9999").encode(),
            statement_date=day,
        )
    # then: refused whole, naming the net; nothing written, and the right bill still imports
    assert [p["field"] for p in err.value.details["problems"]] == ["net"]
    assert await conn.fetchval("SELECT count(*) FROM recon_imports") == 0
    result = await reconciliation.do_import_statement(
        pool, first, school.id, source="provider", content=bill.encode(), statement_date=day
    )
    assert result["replayed"] is False and result["cases"][0]["reference"] == "TOPUP0003"


async def test_a_shortfall_posted_to_an_empty_purse_is_refused_and_changes_nothing(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any]
) -> None:
    school = await make_school(conn)
    first, _ = await make_operators(conn, school.id)
    alice = await make_student(conn, school.id, "S1")
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    await load(conn, school.id, alice, 5_000, "000000000002")
    spend = await postings.system_account(conn, school.id, "fee_income")
    purse = (await postings.open_purses(conn, school.id, alice))["cash"]
    async with conn.transaction():
        await postings.post(
            conn, school_id=school.id, kind="fee", legs=postings.legs_move(purse, spend, 4_000)
        )
    r = await reconciliation.do_import_statement(
        pool, first, school.id, source="bank", content=bank_file(day, [])
    )
    [case] = r["cases"]
    with pytest.raises(InsufficientFunds):
        await reconciliation.do_resolve_case(
            pool,
            first,
            school.id,
            case["id"],
            action="post",
            target_account=purse,
            note="take back",
        )
    with pytest.raises(Conflict):
        await reconciliation.do_resolve_case(
            pool, first, school.id, case["id"], action="refund", note="x"
        )
    assert (await reconciliation.list_cases(conn, school.id))[0]["status"] == "open"
    assert await system(conn, school.id, "suspense") == -5_000


async def test_import_over_the_api_reports_every_bad_row_and_changes_nothing(
    client: Any, conn: asyncpg.Connection[Any]
) -> None:
    from tests.support import login, make_user

    school = await make_school(conn)
    await make_user(conn, "finance", "settlement", school.id)
    h = await login(client, "finance", school.code)
    base = f"/api/v1/admin/schools/{school.code}/reconciliation"
    day: date = await conn.fetchval("SELECT cc_business_date($1)", school.id)
    bad = bank_file(day, [("000000000001", "LOAD", 100), ("000000000002", "LOAD", 200)])
    bad = bad.replace(b"|LOAD|100|", b"|LOAD|1.00|").replace(b"|LOAD|200|", b"|BONUS|200|")
    r = await client.post(
        f"{base}/imports", data={"source": "bank"}, files={"file": ("b.txt", bad)}, headers=h
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "STATEMENT_INVALID" and err["field"] == "file"
    assert [p["field"] for p in err["details"]["problems"]] == ["amount", "kind"]
    r = await client.post(
        f"{base}/imports", data={"source": "provider"}, files={"file": ("p.csv", b"x")}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "statement_date"
    r = await client.post(
        f"{base}/imports", data={"source": "atm"}, files={"file": ("p.csv", b"x")}, headers=h
    )
    assert r.status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM recon_imports") == 0

    good = bank_file(day, [("000000000007", "LOAD", 900)])
    r = await client.post(
        f"{base}/imports", data={"source": "bank"}, files={"file": ("b.txt", good)}, headers=h
    )
    assert r.status_code == 200, r.text
    case_id = r.json()["cases"][0]["id"]
    r = await client.post(
        f"{base}/cases/{case_id}/resolve", json={"action": "post", "note": "x"}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "target_account"
    r = await client.post(
        f"{base}/cases/{case_id}/resolve",
        json={"action": "write_off", "note": "bank error"},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["status"] == "pending_approval"
    r = await client.post(
        f"{base}/cases/{case_id}/write-off-decision",
        json={"approve": True, "note": "ok"},
        headers=h,
    )
    assert r.status_code == 403
    r = await client.get(f"{base}/balances", headers=h)
    assert r.json()["suspense"] == "9.00" and r.json()["open_cases"] == 1


async def test_real_bank_link_loads_reconcile_against_the_simulators_statement(
    pool: asyncpg.Pool[Any], settings: Any
) -> None:
    from campuscard.adapters.bank.simulator import BankTxn
    from campuscard.ledger.money import Money
    from campuscard.moneyflows import bank_link
    from tests.support_moneyflows import bank_world, cid, holder_with_card

    with bank_world(settings) as (wired, sim):
        # given two loads through the bank link, one whose answer was lost (reversed), and a
        # load the bank has that never reached us
        school_id, person = await holder_with_card(pool, wired, sim, bank_balance=50_000)
        holder = Actor(name="holder", person_id=person)
        for fen in (10_000, 3_000):
            _, view, _ = await bank_link.do_load(
                pool, wired, holder, person_id=person, amount=Money(fen), client_id=cid()
            )
            assert view["status"] == "posted"
        sim.inject("0200", "drop")
        _, view, _ = await bank_link.do_load(
            pool, wired, holder, person_id=person, amount=Money(700), client_id=cid()
        )
        assert view["status"] == "reversed"
        token = next(iter(sim.accounts.values())).token
        sim.txns["999999999999"] = BankTxn(
            "999999999999", "009999", "LOAD", token, 2_000, "A99999", datetime.now(UTC)
        )
        day = datetime.now(UTC).astimezone(CHINA).date()
        statement = sim.statement(day.strftime("%Y%m%d"))
        async with pool.acquire() as conn:
            op_id = await make_user_for_recon(conn, school_id)

        # when the bank's own statement file is imported
        result = await reconciliation.do_import_statement(
            pool,
            operator(school_id, op_id, "recon"),
            school_id,
            source="bank",
            content=statement.encode(),
        )

        # then our loads match, the reversed one nets to zero, the stranger is in suspense
        assert result["matched"] == 3
        assert [(c["reference"], c["reason"], c["difference"]) for c in result["cases"]] == [
            ("999999999999", "missing_ours", "20.00")
        ]
        async with pool.acquire() as conn:
            assert await system(conn, school_id, "bank_clearing") == 0
            assert await system(conn, school_id, "bank_account") == -(13_000 + 2_000)
            assert await system(conn, school_id, "suspense") == 2_000


async def make_user_for_recon(conn: asyncpg.Connection[Any], school_id: int) -> int:
    from tests.support import make_user

    return await make_user(conn, "recon-op", "settlement", school_id)
