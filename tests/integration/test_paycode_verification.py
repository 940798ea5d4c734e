"""The must-show refusals of issue 4, at the service the till calls: a code works once, within
±1 step, and never for a revoked phone, a frozen or lost account, another school or a changed
digit. Both schemes (phone-generated and server-minted) go through the same check_code."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from campuscard.config import Settings
from campuscard.ledger.money import Money
from campuscard.payments import code_payments, code_rules, codes
from campuscard.platform import auth
from campuscard.platform.errors import DomainError
from tests.support import ROOT, make_school, make_user
from tests.support_paycodes import make_holder
from tests.support_payments import Device, make_device, make_merchant, signed_terminal

NOW = 1_790_000_000.0  # a fixed instant; codes are made and checked against it


async def refused(coro: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        await coro
    return info.value


async def accept(conn: Any, settings: Settings, school_id: int, code: str, now: float = NOW) -> Any:
    return await codes.do_accept_code(conn, settings, school_id=school_id, code=code, now=now)


async def test_a_code_is_accepted_once_and_a_replay_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    code = holder.code(NOW)
    # when
    verified, use_id = await accept(conn, settings, school.id, code)
    # then
    assert verified.person_id == holder.person_id
    assert verified.device_id == holder.device.id
    assert use_id > 0
    err = await refused(accept(conn, settings, school.id, code, NOW + 5))
    assert (err.code, err.status, err.field) == ("PAYCODE_USED", 409, "code")
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 1
    # a second code in the same minute (counter 1) is a different one-time code
    verified2, _ = await accept(conn, settings, school.id, holder.code(NOW, counter=1))
    assert verified2.counter == 1


async def test_the_database_refuses_a_second_use_even_if_python_checks_are_skipped(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    verified = await codes.check_code(
        conn, settings, school_id=school.id, code=holder.code(NOW), now=NOW
    )
    await codes.do_use_code(conn, verified)
    # the check in Python is raced past; the unique key still stops the second use
    err = await refused(codes.do_use_code(conn, verified))
    assert err.code == "PAYCODE_USED"
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO paycode_uses(school_id, person_id, scheme, device_id, step, counter) "
            "VALUES ($1, $2, 'device', $3, $4, $5)",
            school.id,
            holder.person_id,
            verified.device_id,
            verified.step,
            verified.counter,
        )


@pytest.mark.parametrize("skew_steps", [-1, 1])
async def test_a_clock_skew_of_one_step_is_accepted(
    conn: asyncpg.Connection[Any], settings: Settings, skew_steps: int
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    step = holder.device.step_seconds
    # the phone's clock is one step behind (-1) or ahead (+1) of the server's
    code = holder.code(NOW + skew_steps * step)
    verified, _ = await accept(conn, settings, school.id, code, NOW)
    assert verified.step == code_rules.time_step(NOW, step) + skew_steps


@pytest.mark.parametrize("age_steps", [2, 5, 60])
async def test_an_expired_code_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings, age_steps: int
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    code = holder.code(NOW - age_steps * holder.device.step_seconds)
    err = await refused(accept(conn, settings, school.id, code))
    assert err.code == "PAYCODE_EXPIRED"
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0


async def test_a_code_1000_steps_old_is_refused_although_its_low_digits_match(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    code = holder.code(NOW - code_rules.STEP_MODULUS * holder.device.step_seconds)
    err = await refused(accept(conn, settings, school.id, code))
    assert err.code == "PAYCODE_INVALID"


async def test_a_code_from_a_revoked_device_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    old_code = holder.code(NOW)
    # when: the student binds a new phone (the old one is revoked by it)
    new_device = await codes.do_bind_device(conn, settings, holder.actor, label="new phone")
    # then
    assert new_device.revoked_device_id == holder.device.id
    err = await refused(accept(conn, settings, school.id, old_code))
    assert (err.code, err.status) == ("PAYCODE_DEVICE_REVOKED", 403)
    new_code = code_rules.generate(
        new_device.secret,
        new_device.token,
        code_rules.time_step(NOW, new_device.step_seconds),
        scheme=new_device.scheme,
    )
    verified, _ = await accept(conn, settings, school.id, new_code)
    assert verified.device_id == new_device.id
    active = await conn.fetchval(
        "SELECT count(*) FROM paycode_devices WHERE person_id = $1 AND status = 'active'",
        holder.person_id,
    )
    assert active == 1


async def test_an_unbound_device_is_refused_and_the_operator_can_unbind(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    operator_id = await make_user(conn, "cardcenter", "card_center", school.id)
    operator = await auth.load_actor(conn, operator_id)
    # when
    result = await codes.do_unbind_device(conn, operator, holder.device.id, reason="phone lost")
    # then
    assert result["status"] == "revoked"
    err = await refused(accept(conn, settings, school.id, holder.code(NOW)))
    assert err.code == "PAYCODE_DEVICE_REVOKED"
    audit = await conn.fetchrow(
        "SELECT actor, after FROM audit_log WHERE action = 'paycode.device.unbind'"
    )
    assert audit is not None and audit["actor"] == "cardcenter"
    assert audit["after"]["reason"] == "phone lost"
    told = await conn.fetchval(
        "SELECT count(*) FROM notifications WHERE person_id = $1 AND kind = "
        "'paycode.device_unbound'",
        holder.person_id,
    )
    assert told == 1


async def test_the_holder_unbinds_but_another_student_cannot(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    other = await make_holder(conn, settings, school.id, "S2002")
    err = await refused(codes.do_unbind_device(conn, other.actor, holder.device.id))
    assert err.status == 403
    await codes.do_unbind_device(conn, holder.actor, holder.device.id)
    err = await refused(codes.do_unbind_device(conn, holder.actor, holder.device.id))
    assert err.code == "DEVICE_ALREADY_UNBOUND"


async def test_a_code_from_a_frozen_account_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    await conn.execute(
        "UPDATE persons SET account_status = 'frozen' WHERE id = $1", holder.person_id
    )
    err = await refused(accept(conn, settings, school.id, holder.code(NOW)))
    assert (err.code, err.status) == ("ACCOUNT_FROZEN", 403)
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0


@pytest.mark.parametrize(("state", "code"), [("lost", "CARD_LOST"), ("frozen", "CARD_FROZEN")])
async def test_a_code_from_an_account_whose_card_is_lost_or_frozen_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings, state: str, code: str
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    await conn.execute(
        "INSERT INTO cards(school_id, person_id, number, state) VALUES ($1, $2, '20260001', $3)",
        school.id,
        holder.person_id,
        state,
    )
    err = await refused(accept(conn, settings, school.id, holder.code(NOW)))
    assert err.code == code


async def test_a_code_from_another_school_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn, "AAA")
    other_school = await make_school(conn, "BBB")
    holder = await make_holder(conn, settings, school.id)
    err = await refused(accept(conn, settings, other_school.id, holder.code(NOW)))
    assert (err.code, err.status) == ("PAYCODE_UNKNOWN", 404)
    # and it still works at home: the refusal spent nothing
    await accept(conn, settings, school.id, holder.code(NOW))


async def test_a_code_with_a_changed_digit_is_refused(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    code = holder.code(NOW)
    refusals = set()
    for position in range(len(code) - 1):
        for delta in (1, 5):
            digits = list(code[:-1])
            digits[position] = str((int(digits[position]) + delta) % 10)
            body = "".join(digits)
            # with the check digit left alone (a misread) and recomputed (a forgery)
            for forged in (body + code[-1], body + code_rules.luhn_digit(body)):
                err = await refused(accept(conn, settings, school.id, forged))
                refusals.add(err.code)
    assert refusals <= {
        "PAYCODE_MALFORMED",
        "PAYCODE_UNKNOWN",
        "PAYCODE_INVALID",
        "PAYCODE_EXPIRED",
    }
    assert {"PAYCODE_MALFORMED", "PAYCODE_INVALID"} <= refusals
    assert await conn.fetchval("SELECT count(*) FROM paycode_uses") == 0
    await accept(conn, settings, school.id, code)  # the untouched code still works


@pytest.mark.parametrize(
    "bad", ["", "123", "7" * 21, "7123456780003973582a", 12345678901234567890, None, "９" * 20]
)
async def test_malformed_input_is_refused_naming_the_field(
    conn: asyncpg.Connection[Any], settings: Settings, bad: object
) -> None:
    school = await make_school(conn)
    err = await refused(accept(conn, settings, school.id, bad))  # type: ignore[arg-type]
    assert err.field == "code"
    assert err.status == 422


async def test_minted_code_behind_the_same_interface(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    # given: a phone that cannot run the generator asks the server for a code
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    minted = await codes.do_mint_code(conn, settings, holder.actor, now=NOW)
    assert len(minted.code) == 20 and minted.code[0] == code_rules.SCHEME_MINTED
    stored = await conn.fetchval(
        "SELECT verification_hash FROM paycode_minted WHERE id = $1", minted.id
    )
    assert minted.code[9:19].encode() not in stored  # only a keyed hash is registered
    # when
    verified, _ = await accept(conn, settings, school.id, minted.code, NOW + 10)
    # then
    assert (verified.scheme, verified.person_id) == ("minted", holder.person_id)
    assert (await refused(accept(conn, settings, school.id, minted.code, NOW + 11))).code == (
        "PAYCODE_USED"
    )


async def test_minted_code_refusals(conn: asyncpg.Connection[Any], settings: Settings) -> None:
    school = await make_school(conn, "AAA")
    other_school = await make_school(conn, "BBB")
    holder = await make_holder(conn, settings, school.id)
    first = await codes.do_mint_code(conn, settings, holder.actor, now=NOW)
    # a wrong verification code (with a valid check digit)
    body = first.code[:9] + "0000000000"
    forged = body + code_rules.luhn_digit(body)
    assert (await refused(accept(conn, settings, school.id, forged))).code == "PAYCODE_INVALID"
    assert (await refused(accept(conn, settings, other_school.id, first.code))).code == (
        "PAYCODE_UNKNOWN"
    )
    # expired after its time to live
    late = NOW + settings.paycode_minted_ttl_seconds + 1
    assert (await refused(accept(conn, settings, school.id, first.code, late))).code == (
        "PAYCODE_EXPIRED"
    )
    # a newer code cancels the older one
    second = await codes.do_mint_code(conn, settings, holder.actor, now=NOW + 5)
    assert (await refused(accept(conn, settings, school.id, first.code))).code == (
        "PAYCODE_EXPIRED"
    )
    # frozen account: the minted code is refused too, and minting is refused
    await conn.execute(
        "UPDATE persons SET account_status = 'frozen' WHERE id = $1", holder.person_id
    )
    assert (await refused(accept(conn, settings, school.id, second.code))).code == (
        "ACCOUNT_FROZEN"
    )
    assert (await refused(codes.do_mint_code(conn, settings, holder.actor))).code == (
        "ACCOUNT_FROZEN"
    )


async def test_only_a_cardholder_binds_and_the_secret_is_not_stored(
    conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    err = await refused(codes.do_bind_device(conn, settings, ROOT))
    assert err.code == "CARDHOLDER_REQUIRED"
    row = await conn.fetchrow("SELECT * FROM paycode_devices WHERE id = $1", holder.device.id)
    assert row is not None
    assert all(holder.device.secret not in bytes(v) for v in row.values() if isinstance(v, bytes))
    assert holder.device.secret.hex() not in str(dict(row))
    # a new binding has no salt: the secret is derived again from the master key, the school,
    # the token and the step length (scheme 6, decision 0401)
    assert row["salt"] is None
    assert holder.device.scheme == code_rules.SCHEME_DEVICE_KEYED
    assert (
        code_rules.derive_keyed_secret(
            settings.master_key.get_secret_value().encode(),
            school.id,
            row["token"],
            row["step_seconds"],
        )
        == holder.device.secret
    )


async def _till(conn: asyncpg.Connection[Any], settings: Settings, school_id: int) -> Device:
    merchant_id, _ = await make_merchant(conn, school_id)
    return await make_device(conn, settings, school_id, merchant_id)


async def _scan(pool: asyncpg.Pool[Any], settings: Settings, dev: Device, code: str) -> str:
    """A till's payment of 1.00 with ``code`` (what the till scans): "paid" or the refusal."""
    try:
        answer = await code_payments.do_pay_with_code(
            pool,
            settings,
            signed_terminal(dev),
            client_id=f"qr-{secrets.token_hex(6)}",
            code=code,
            amount=Money(100),
            now=NOW,
        )
    except DomainError as err:
        return err.code
    return "paid" if answer.ok else str(answer.error_code)


def _forged(good: str, guess: int) -> str:
    body = good[:13] + f"{guess:06d}"
    return body + code_rules.luhn_digit(body)


async def test_guessing_locks_the_token_for_a_while(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    dev = await _till(conn, settings, school.id)
    good = holder.code(NOW)
    for guess in range(codes.MAX_FAILURES):
        assert await _scan(pool, settings, dev, _forged(good, guess)) == "PAYCODE_INVALID"
    # then even the right code is refused until the window passes, at the till and elsewhere
    assert await _scan(pool, settings, dev, good) == "PAYCODE_LOCKED"
    err = await refused(accept(conn, settings, school.id, good))
    assert (err.code, err.status) == ("PAYCODE_LOCKED", 429)
    failures = await conn.fetch("SELECT terminal_id, reason FROM paycode_failures")
    assert [tuple(f) for f in failures] == [(dev.id, "PAYCODE_INVALID")] * codes.MAX_FAILURES
    await conn.execute(
        "UPDATE paycode_throttle SET window_start = window_start - interval '11 minutes'"
    )
    assert await _scan(pool, settings, dev, good) == "paid"
    assert (
        codes.credential_for(
            await codes.check_code(
                conn, settings, school_id=school.id, code=holder.code(NOW, 1), now=NOW
            )
        )
        == f"paycode:d:{holder.device.id}:{code_rules.time_step(NOW, 60)}:1"
    )


async def test_parallel_wrong_codes_are_evaluated_at_most_up_to_the_limit(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    """Eight wrong codes at once at a till, each on its own connection: each is counted in
    one statement, so no more than the limit are evaluated; the rest are refused unseen."""
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    dev = await _till(conn, settings, school.id)
    good = holder.code(NOW)
    forged = [_forged(good, guess) for guess in range(8)]

    answers = await asyncio.gather(*(_scan(pool, settings, dev, code) for code in forged))
    assert answers.count("PAYCODE_INVALID") == codes.MAX_FAILURES
    assert answers.count("PAYCODE_LOCKED") == len(forged) - codes.MAX_FAILURES
    # the right code is refused too until the window passes
    assert await _scan(pool, settings, dev, good) == "PAYCODE_LOCKED"


async def test_a_code_that_checks_out_is_not_counted(
    pool: asyncpg.Pool[Any], conn: asyncpg.Connection[Any], settings: Settings
) -> None:
    school = await make_school(conn)
    holder = await make_holder(conn, settings, school.id)
    dev = await _till(conn, settings, school.id)
    for counter in range(codes.MAX_FAILURES + 2):
        assert await _scan(pool, settings, dev, holder.code(NOW, counter)) == "paid"
    assert await conn.fetchval("SELECT count(*) FROM paycode_throttle") == 0
    # a wrong code after them still counts
    assert await _scan(pool, settings, dev, _forged(holder.code(NOW), 1)) == "PAYCODE_INVALID"
    assert await conn.fetchval("SELECT attempts FROM paycode_throttle") == 1
