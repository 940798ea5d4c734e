"""Builders for payment-code tests: a cardholder with a bound phone, and codes made like the
phone makes them (the Python twin of web/static/js/paycode.js)."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from campuscard.config import Settings
from campuscard.payments import code_rules, codes
from campuscard.platform import auth
from campuscard.platform.actors import Actor
from tests.support import make_student, make_user


@dataclass
class Holder:
    school_id: int
    person_id: int
    user_id: int
    actor: Actor
    device: codes.BoundDevice

    def code(self, at: float, counter: int = 0) -> str:
        step = code_rules.time_step(at, self.device.step_seconds)
        return code_rules.generate(
            self.device.secret, self.device.token, step, counter, self.device.scheme
        )


async def make_holder(
    conn: asyncpg.Connection[Any],
    settings: Settings,
    school_id: int,
    number: str = "S1001",
    *,
    cash: int = 10_000,
    salted: bool = False,
) -> Holder:
    """A cardholder with a phone bound now (scheme 6); ``salted``: bound as phones were before
    decision 0401 (a salted secret, scheme-7 codes)."""
    person_id = await make_student(conn, school_id, number, cash=cash)
    user_id = await make_user(conn, f"u{number}", "cardholder", school_id, person_id=person_id)
    actor = await auth.load_actor(conn, user_id)
    device = await codes.do_bind_device(conn, settings, actor, label="test phone")
    if salted:
        salt = secrets.token_bytes(16)
        await conn.execute("UPDATE paycode_devices SET salt = $2 WHERE id = $1", device.id, salt)
        master = settings.master_key.get_secret_value().encode()
        device = dataclasses.replace(
            device,
            secret=code_rules.derive_device_secret(master, device.id, salt),
            scheme=code_rules.SCHEME_DEVICE,
        )
    return Holder(school_id, person_id, user_id, actor, device)
