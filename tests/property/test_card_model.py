"""The card state machine against a model: a few holders, their cards, their cash, the device
blacklist and the count of everything an action leaves behind.

Hypothesis drives random sequences of card-center actions (issue, activate, report loss,
unblock, freeze, unfreeze, replace, cancel, expire), by the right and the wrong people (the
card center, the holder, another holder, a teacher, another school's card center), through the
real service functions (``cards/lifecycle.py``, the expiry job) on a real PostgreSQL, plus
payments at a POS (``payments/booking.py``). After every step:

* each card's state, each holder's cash and account status equal the model's;
* a refused action changed nothing (cards, blacklist version, audit rows, card events,
  notifications, outbox, journal);
* a person holds at most one live card;
* the device blacklist (the service behind GET /api/v1/terminal/blacklist) lists exactly the
  cards in blocked states, a device applying deltas ends with the same list, and a card
  that was replaced, cancelled or expired never leaves it;
* what a card may do at a POS (the real payment check) matches its state;
* money is neither made nor lost (``check_ledger``: I1-I4).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from hypothesis.stateful import (
    run_state_machine_as_test as run_machine,
)

from campuscard.cards import jobs as card_jobs
from campuscard.cards import lifecycle as cards
from campuscard.config import Settings
from campuscard.db.pool import Conn
from campuscard.ledger.checks import check_ledger
from campuscard.ledger.money import Money
from campuscard.payments import booking, terminals
from campuscard.platform import auth
from campuscard.platform.actors import Actor
from campuscard.platform.errors import DomainError
from tests.property.support import Env
from tests.support import fund, make_school, make_student, make_user
from tests.support_payments import Device, make_device, make_merchant, nonce, sign_headers

_codes = itertools.count()
_card_numbers = itertools.count(1)

# The model's own reading of the card rules (cards/rules.py docstring, docs): written out here
# rather than imported, so a change to the rules has to change the test too.
LIVE = frozenset({"issued", "active", "lost", "frozen"})
BLOCKED = frozenset({"lost", "frozen", "replaced", "cancelled", "expired"})
PERMANENT = frozenset({"replaced", "cancelled", "expired"})
SOURCES = {
    "activate": {"issued"},
    "report_loss": {"active", "frozen"},
    "unblock": {"lost"},
    "freeze": {"active"},
    "unfreeze": {"frozen"},
    "replace": {"active", "lost", "frozen"},
    "cancel": LIVE | {"expired"},
}
TARGET = {
    "activate": "active",
    "report_loss": "lost",
    "unblock": "active",
    "freeze": "frozen",
    "unfreeze": "active",
    "replace": "replaced",
    "cancel": "cancelled",
}
HOLDER_MAY = frozenset({"activate", "report_loss"})  # online or at a kiosk
OPERATOR_ONLY = frozenset({"unblock", "freeze", "unfreeze"})  # holder told "card center only"
COUNTER_ONLY = frozenset({"replace", "cancel"})  # anyone else: "no such card"
# what a POS is told when a card may not pay
REFUSAL_BY_STATE = {
    "issued": "CARD_NOT_ACTIVE",
    "lost": "CARD_LOST",
    "frozen": "CARD_FROZEN",
    "replaced": "CARD_REPLACED",
    "cancelled": "CARD_CANCELLED",
    "expired": "CARD_EXPIRED",
}
FEE = cards.DEFAULT_REPLACEMENT_FEE
DEPOSIT = 1_000
HOLDERS = 3
WHO = ("operator",) * 6 + ("holder", "holder", "other_holder", "teacher", "foreign")
# a card of a holder: (holder, which one: their newest, the one before it, or any by index)
Pick = tuple[int, str, int]
PICK = st.tuples(
    st.integers(0, HOLDERS - 1),
    st.sampled_from(("newest", "newest", "newest", "previous", "any")),
    st.integers(0, 9),
)
BLANK = st.sampled_from((False, False, False, False, True))  # an empty reason, now and then

Outcome = tuple[str, str]  # ("ok", new state) or (error code, field)


@dataclass
class HolderM:
    person_id: int
    cash: int
    closed: bool = False


@dataclass
class CardM:
    id: int
    holder: int
    number: str
    uid: str
    state: str
    deposit: int


@dataclass
class Model:
    holders: list[HolderM] = field(default_factory=list)
    cards: dict[int, CardM] = field(default_factory=dict)
    listed: dict[int, bool] = field(default_factory=dict)  # blacklisted card -> permanent
    reasons: dict[int, str] = field(default_factory=dict)  # blacklisted card -> its reason
    ever_permanent: set[int] = field(default_factory=set)
    version: int = 0
    audit: int = 0
    events: int = 0
    journal: int = 0

    def live_card(self, holder: int) -> CardM | None:
        found = [c for c in self.cards.values() if c.holder == holder and c.state in LIVE]
        assert len(found) <= 1
        return found[0] if found else None

    def set_state(self, card: CardM, state: str) -> None:
        """Move a card and keep the blacklist: blocked cards listed with their state as the
        reason, permanent ones for ever; every change of the list (a card in or out, a new
        reason) is one new version."""
        card.state = state
        entry = self.listed.get(card.id)
        if state in BLOCKED:
            permanent = state in PERMANENT or bool(entry)
            if entry is None or permanent != entry or self.reasons.get(card.id) != state:
                self.listed[card.id] = permanent
                self.reasons[card.id] = state
                self.version += 1
            if permanent:
                self.ever_permanent.add(card.id)
        elif entry is not None:
            assert not entry, "a permanent entry cannot leave"
            del self.listed[card.id]
            del self.reasons[card.id]
            self.version += 1


@dataclass(frozen=True)
class Act:
    action: str
    who: str
    blank_reason: bool = False
    route: str = "cash_desk"
    fee_source: str = "purse"


def predict(model: Model, act: Act, card_id: int) -> tuple[Outcome, Model]:
    """What a card action answers and the model after it (the input model is not changed)."""
    m = copy.deepcopy(model)
    card = m.cards[card_id]
    holder = m.holders[card.holder]
    a, who = act.action, act.who
    # the request's own input comes first
    if act.blank_reason and a in ("unblock", "freeze", "cancel"):
        return ("VALIDATION_FAILED", "verification" if a == "unblock" else "reason"), model
    # then who asks: strangers are told the card does not exist
    if who != "operator":
        if a in HOLDER_MAY and who == "holder":
            pass
        elif a in OPERATOR_ONLY and who == "holder":
            return ("ROLE_REQUIRED", ""), model
        else:
            return ("NOT_FOUND", "card_id"), model
    if card.state not in SOURCES[a]:
        return ("CARD_TRANSITION_REFUSED", "state"), model
    if a == "replace" and act.fee_source == "purse" and holder.cash < FEE:
        return ("INSUFFICIENT_FUNDS", "fee_source"), model
    m.set_state(card, TARGET[a])
    m.audit += 1
    m.events += 1
    if a == "replace":
        m.events += 1  # the new card's 'issue' event
        m.journal += 1  # the fee
        if act.fee_source == "purse":
            holder.cash -= FEE
    if a == "cancel":
        if m.live_card(card.holder) is not None:
            # an old (expired) card handed back while a newer one is in use: its deposit is
            # paid out; the balance and the account stay with the card in use
            m.journal += 1 if card.deposit else 0
        else:
            m.journal += 1 if holder.cash or card.deposit else 0  # one payout of both
            holder.cash = 0
            holder.closed = True
    return ("ok", TARGET[a]), m


def pay_expectation(model: Model, card: CardM, fen: int) -> str:
    if card.state != "active":
        return REFUSAL_BY_STATE[card.state]
    if model.holders[card.holder].cash < fen:
        return "INSUFFICIENT_FUNDS"
    return "ok"


async def _counts(conn: Conn, school_id: int) -> dict[str, Any]:
    """Everything an action may leave behind, to prove a refused one left nothing."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM audit_log WHERE school_id = $1) AS audit,
                  (SELECT count(*) FROM card_events WHERE school_id = $1) AS events,
                  (SELECT count(*) FROM notifications WHERE school_id = $1) AS notifications,
                  (SELECT count(*) FROM outbox WHERE school_id = $1) AS outbox,
                  (SELECT count(*) FROM journal_tx WHERE school_id = $1) AS journal,
                  (SELECT coalesce(max(version), 0) FROM blacklist_heads
                    WHERE school_id = $1) AS version""",
        school_id,
    )
    assert row is not None
    states = await conn.fetch(
        "SELECT id, state, deposit, replaced_by FROM cards WHERE school_id = $1 ORDER BY id",
        school_id,
    )
    balances = await conn.fetch(
        "SELECT id, balance, version FROM accounts WHERE school_id = $1 ORDER BY id", school_id
    )
    return dict(row) | {
        "cards": [tuple(r) for r in states],
        "balances": [tuple(r) for r in balances],
    }


class CardMachine(RuleBasedStateMachine):
    env: Env
    settings: Settings
    foreign: Actor  # the card center of another school
    # (action, "ok" | refusal code) over the whole run, to prove every path was taken
    seen: collections.Counter[tuple[str, str]]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.school_id = 0
        self.actors: dict[str, Actor] = {}
        self.holder_actors: list[Actor] = []
        self.device: Device | None = None
        self.device_list: dict[str, dict[str, Any]] = {}  # a POS that syncs only now and then
        self.device_version = 0

    def run(self, coro: Any) -> Any:
        return self.env.run(coro)

    # given: a school, three students with some cash, the staff, a canteen POS
    @initialize(
        cash=st.lists(st.integers(0, 6_000), min_size=HOLDERS, max_size=HOLDERS),
        activated=st.lists(st.booleans(), min_size=HOLDERS, max_size=HOLDERS),
    )
    def open_school(self, cash: list[int], activated: list[bool]) -> None:
        async def setup() -> None:
            async with self.env.pool.acquire() as conn:
                code = f"K{next(_codes):05d}"
                school = await make_school(conn, code)
                self.school_id = school.id
                for i, fen in enumerate(cash):
                    person = await make_student(conn, school.id, f"S{i}")
                    if fen:
                        await fund(conn, school.id, person, cash=fen)
                    self.model.holders.append(HolderM(person, fen))
                    user = await make_user(
                        conn, f"{code}-h{i}", "cardholder", school.id, person_id=person
                    )
                    self.holder_actors.append(await auth.load_actor(conn, user))
                for role in ("card_center", "teacher"):
                    user = await make_user(conn, f"{code}-{role}", role, school.id)
                    self.actors[role] = await auth.load_actor(conn, user)
                merchant, outlet = await make_merchant(conn, school.id, shards=2)
                self.device = await make_device(
                    conn, self.settings, school.id, merchant, f"POS-{code}", outlet_id=outlet
                )
                counts = await _counts(conn, school.id)
                self.model.audit = counts["audit"]
                self.model.events = counts["events"]
                self.model.journal = counts["journal"]

        self.run(setup())
        # each holder starts with a card, issued at the counter (some not yet activated)
        for i, on in enumerate(activated):
            assert self._issue(i, "operator", on, 0, "cash_desk") is not None

    def actor(self, who: str, holder: int) -> Actor:
        if who == "operator":
            return self.actors["card_center"]
        if who == "holder":
            return self.holder_actors[holder]
        if who == "other_holder":
            return self.holder_actors[(holder + 1) % HOLDERS]
        if who == "teacher":
            return self.actors["teacher"]
        return self.foreign

    # -- doing things -------------------------------------------------------------------------

    async def _call(self, act: Act, card: CardM, new: tuple[str, str]) -> tuple[Outcome, Any]:
        actor = self.actor(act.who, card.holder)
        reason = "" if act.blank_reason else "the holder asked at the counter"
        async with self.env.pool.acquire() as conn:
            try:
                if act.action == "activate":
                    out = await cards.activate_card(conn, actor, card.id, channel="online")
                elif act.action == "report_loss":
                    out = await cards.report_loss(conn, actor, card.id, channel="online")
                elif act.action == "unblock":
                    out = await cards.unblock_card(conn, actor, card.id, verification=reason)
                elif act.action == "freeze":
                    out = await cards.freeze_card(conn, actor, card.id, reason=reason)
                elif act.action == "unfreeze":
                    out = await cards.unfreeze_card(conn, actor, card.id, reason=reason)
                elif act.action == "replace":
                    out = await cards.replace_card(
                        conn, actor, card.id, number=new[0], uid=new[1], fee_source=act.fee_source
                    )
                else:
                    out = await cards.cancel_card(
                        conn, actor, card.id, route=act.route, reason=reason
                    )
            except DomainError as err:
                return (err.code, err.field or ""), None
        return ("ok", out["state"] if act.action != "replace" else "replaced"), out

    def _new_card_ids(self) -> tuple[str, str]:
        n = next(_card_numbers)
        return f"7{n:09d}", f"{0x5A000000 + n:08X}"

    def _apply(self, act: Act, card_id: int) -> None:
        """Do one action and compare its answer and everything it left with the model."""
        expected, after = predict(self.model, act, card_id)
        before = self.run(self._snapshot())
        new = self._new_card_ids()
        got, out = self.run(self._call(act, self.model.cards[card_id], new))
        assert got == expected, (act, self.model.cards[card_id], got, expected)
        self.seen[act.action, got[0]] += 1
        if got[0] != "ok":
            assert self.run(self._snapshot()) == before, f"refused {act} changed something"
            return
        self.model = after
        created: list[int] = []
        if act.action == "replace":
            old = self.model.cards[card_id]
            assert out["replaces"] == card_id and out["state"] == "active"
            self.model.cards[out["id"]] = CardM(
                out["id"], old.holder, new[0], new[1], "active", old.deposit
            )
            created.append(out["id"])
        self.run(self._check_can_pay([card_id, *created]))

    async def _snapshot(self) -> dict[str, Any]:
        async with self.env.pool.acquire() as conn:
            return await _counts(conn, self.school_id)

    @rule(
        holder=st.integers(0, HOLDERS - 1),
        who=st.sampled_from(("operator",) * 6 + ("holder", "teacher", "foreign")),
        activate=st.booleans(),
        deposit=st.sampled_from((0, DEPOSIT)),
        source=st.sampled_from(("cash_desk", "purse")),
    )
    def issue(self, holder: int, who: str, activate: bool, deposit: int, source: str) -> None:
        self._issue(holder, who, activate, deposit, source)

    def _issue(
        self, holder: int, who: str, activate: bool, deposit: int, source: str
    ) -> int | None:
        h = self.model.holders[holder]
        if who != "operator":
            expected: Outcome = ("NOT_FOUND", "person_id")
        elif h.closed:
            expected = ("ACCOUNT_CLOSED", "person_id")
        elif self.model.live_card(holder) is not None:
            expected = ("CARD_ALREADY_HELD", "person_id")
        elif deposit and source == "purse" and h.cash < deposit:
            expected = ("INSUFFICIENT_FUNDS", "deposit_source")
        else:
            expected = ("ok", "active" if activate else "issued")
        number, uid = self._new_card_ids()

        async def call() -> tuple[Outcome, Any]:
            async with self.env.pool.acquire() as conn:
                try:
                    out = await cards.issue_card(
                        conn,
                        self.actor(who, holder),
                        person_id=h.person_id,
                        number=number,
                        uid=uid,
                        deposit_fen=deposit,
                        deposit_source=source,
                        activate=activate,
                    )
                except DomainError as err:
                    return (err.code, err.field or ""), None
                return ("ok", out["state"]), out

        before = self.run(self._snapshot())
        got, out = self.run(call())
        assert got == expected, (holder, who, got, expected)
        self.seen["issue", got[0]] += 1
        if got[0] != "ok":
            assert self.run(self._snapshot()) == before, "a refused issue changed something"
            return None
        card = CardM(out["id"], holder, number, uid, "issued", deposit)
        self.model.cards[card.id] = card
        self.model.set_state(card, got[1])
        self.model.audit += 1
        self.model.events += 1
        if deposit:
            self.model.journal += 1
            if source == "purse":
                h.cash -= deposit
        self.run(self._check_can_pay([card.id]))
        return card.id

    def _card(self, pick: Pick) -> int:
        """Mostly a holder's newest card (the one in their pocket), sometimes an older one."""
        holder, which, index = pick
        mine = sorted(c.id for c in self.model.cards.values() if c.holder == holder)
        if which == "newest":
            return mine[-1]
        if which == "previous":
            return mine[-2] if len(mine) > 1 else mine[-1]
        return mine[index % len(mine)]

    @rule(pick=PICK, who=st.sampled_from(WHO))
    def activate(self, pick: Pick, who: str) -> None:
        card = self._card(pick)
        self._apply(Act("activate", who), card)

    @rule(pick=PICK, who=st.sampled_from(WHO))
    def report_loss(self, pick: Pick, who: str) -> None:
        card = self._card(pick)
        self._apply(Act("report_loss", who), card)

    @rule(pick=PICK, who=st.sampled_from(WHO), blank=BLANK)
    def unblock(self, pick: Pick, who: str, blank: bool) -> None:
        card = self._card(pick)
        self._apply(Act("unblock", who, blank_reason=blank), card)

    @rule(pick=PICK, who=st.sampled_from(WHO), blank=BLANK)
    def freeze(self, pick: Pick, who: str, blank: bool) -> None:
        card = self._card(pick)
        self._apply(Act("freeze", who, blank_reason=blank), card)

    @rule(pick=PICK, who=st.sampled_from(WHO))
    def unfreeze(self, pick: Pick, who: str) -> None:
        card = self._card(pick)
        self._apply(Act("unfreeze", who), card)

    @rule(
        pick=PICK,
        who=st.sampled_from(WHO),
        fee_source=st.sampled_from(("purse", "cash_desk")),
    )
    def replace(self, pick: Pick, who: str, fee_source: str) -> None:
        card = self._card(pick)
        self._apply(Act("replace", who, fee_source=fee_source), card)

    @rule(
        pick=PICK,
        who=st.sampled_from(WHO),
        route=st.sampled_from(("cash_desk", "bank_clearing", "provider_clearing")),
        blank=BLANK,
    )
    def cancel(self, pick: Pick, who: str, route: str, blank: bool) -> None:
        card = self._card(pick)
        self._apply(Act("cancel", who, route=route, blank_reason=blank), card)

    @rule(pick=PICK, data=st.data())
    def legal_move(self, pick: Pick, data: st.DataObject) -> None:
        """What the card center does on a normal day: an action the card's state allows, by
        someone allowed to do it (the random rules mostly try what must be refused)."""
        holder = pick[0]
        if not self.model.holders[holder].closed and self.model.live_card(holder) is None:
            # the card expired or was cancelled before: the holder gets a new one
            self._issue(
                holder,
                "operator",
                data.draw(st.booleans(), label="activate"),
                data.draw(st.sampled_from((0, DEPOSIT)), label="deposit"),
                data.draw(st.sampled_from(("cash_desk", "purse")), label="source"),
            )
            return
        card = self._card(pick)
        state = self.model.cards[card].state
        # cancel only for an expired card handed back (a live card's cancel ends the holder's
        # story; the cancel rule tries that often enough); the ways back to active are
        # favoured so that cards live long enough to go round again
        allowed = [a for a, s in SOURCES.items() if state in s and a != "cancel"]
        allowed += [a for a in allowed if a in ("activate", "unblock", "unfreeze")] * 2
        if state == "expired":
            allowed.append("cancel")
        if not allowed:
            return
        action = data.draw(st.sampled_from(allowed), label="action")
        who = data.draw(st.sampled_from(("operator", "holder")), label="who")
        self._apply(
            Act(
                action,
                who if action in HOLDER_MAY else "operator",
                fee_source=data.draw(st.sampled_from(("purse", "cash_desk")), label="fee"),
            ),
            card,
        )

    @rule(pick=PICK)
    def expire(self, pick: Pick) -> None:
        card = self._card(pick)
        # time passes for this card: its date is behind the school's business day; the job runs
        m = self.model.cards[card]
        before = self.run(self._snapshot())

        async def run_job() -> int:
            async with self.env.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE cards SET expires_on = cc_business_date(school_id) - 1 WHERE id = $1",
                    card,
                )
            return int(await card_jobs.expire_cards(self.env.pool, self.settings))

        expired = self.run(run_job())
        self.seen["expire", "ok" if m.state in LIVE else "CARD_TRANSITION_REFUSED"] += 1
        if m.state in LIVE:
            assert expired == 1
            self.model.set_state(m, "expired")
            self.model.audit += 1
            self.model.events += 1
        else:
            assert expired == 0
            assert self.run(self._snapshot()) == before, "expiry touched a closed card"
        self.run(self._check_can_pay([card]))

    @rule(
        a=st.sampled_from(("activate", "report_loss", "unblock", "freeze", "unfreeze", "cancel")),
        b=st.sampled_from(("activate", "report_loss", "unblock", "freeze", "unfreeze", "cancel")),
        who_a=st.sampled_from(("operator", "holder")),
        pick=PICK,
    )
    def race(self, a: str, b: str, who_a: str, pick: Pick) -> None:
        """Two people act on one card at the same moment: the answers and the end state are
        those of one order or the other."""
        card = self._card(pick)
        acts = (Act(a, who_a), Act(b, "operator"))
        m = self.model.cards[card]

        async def both() -> list[tuple[Outcome, Any]]:
            return list(
                await asyncio.gather(*(self._call(x, m, self._new_card_ids()) for x in acts))
            )

        got = [o for o, _ in self.run(both())]
        orders = []
        for first, second in ((0, 1), (1, 0)):
            o1, m1 = predict(self.model, acts[first], card)
            o2, m2 = predict(m1, acts[second], card)
            answers = [o1, o2] if first == 0 else [o2, o1]
            orders.append((answers, m2))
        for answers, end in orders:
            if answers == got:
                self.model = end
                self.seen["race", "ok" if any(o == "ok" for o, _ in got) else "refused"] += 1
                break
        else:
            raise AssertionError(f"{acts} on {m} answered {got}, no serial order gives that")
        self.run(self._check_can_pay([card]))

    @rule(pick=PICK, fen=st.integers(1, 500))
    def pay(self, pick: Pick, fen: int) -> None:
        card = self._card(pick)
        m = self.model.cards[card]
        expected = pay_expectation(self.model, m, fen)

        async def book() -> booking.PaymentAnswer:
            async with self.env.pool.acquire() as conn:
                return await booking.book_payment(
                    conn,
                    self.settings,
                    await self._signed("/api/v1/terminal/pay", m, fen),
                    client_id=f"pay-{nonce()}",
                    payer=booking.CardPayer(m.number, m.uid),
                    amount=Money(fen),
                )

        answer = self.run(book())
        got = "ok" if answer.ok else answer.body["error"]["code"]
        assert got == expected, (m, fen, answer.body)
        self.seen["pay", got] += 1
        if answer.ok:
            self.model.holders[m.holder].cash -= fen
            self.model.journal += 1

    @rule()
    def device_syncs(self) -> None:
        """A POS that was offline for a while asks for the changes since its version."""
        self.device_version = self.run(self._sync(self.device_list, self.device_version))

    # -- checking -----------------------------------------------------------------------------

    async def _signed(self, path: str, card: CardM, fen: int) -> terminals.SignedTerminal:
        assert self.device is not None
        body = json.dumps({"card_number": card.number, "amount": str(Money(fen))}).encode()
        headers = sign_headers(self.device, "POST", path, body)
        return await terminals.verify_request(
            self.env.pool,
            self.settings,
            method="POST",
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    async def _check_can_pay(self, card_ids: list[int]) -> None:
        """What each card may do at a POS: the real check of a one-fen payment."""
        async with self.env.pool.acquire() as conn:
            for card_id in card_ids:
                m = self.model.cards[card_id]
                answer = await booking.check_payment(
                    conn,
                    await self._signed("/api/v1/terminal/pay/check", m, 1),
                    payer=booking.CardPayer(m.number, m.uid),
                    amount=Money(1),
                )
                got = "ok" if answer.ok else answer.body["error"]["code"]
                assert got == pay_expectation(self.model, m, 1), (m, answer.body)

    async def _sync(self, held: dict[str, dict[str, Any]], since: int) -> int:
        async with self.env.pool.acquire() as conn:
            delta = await cards.blacklist(conn, self.school_id, since=since)
        assert not delta["full"]
        for entry in delta["added"]:
            held[entry["number"]] = entry
        for entry in delta["removed"]:
            assert entry["number"] in held, "a device is told to remove what it never had"
            del held[entry["number"]]
        return int(delta["version"])

    @invariant()
    def matches_model(self) -> None:
        if not self.school_id:
            return

        async def look() -> tuple[Any, ...]:
            async with self.env.pool.acquire() as conn:
                db_cards = {
                    r["id"]: r
                    for r in await conn.fetch(
                        "SELECT id, person_id, number, state FROM cards WHERE school_id = $1",
                        self.school_id,
                    )
                }
                most_live = await conn.fetchval(
                    """SELECT coalesce(max(n), 0) FROM (
                         SELECT count(*) AS n FROM cards WHERE school_id = $1
                            AND state IN ('issued', 'active', 'lost', 'frozen')
                          GROUP BY person_id) x""",
                    self.school_id,
                )
                persons = {
                    r["id"]: (r["account_status"], r["cash"], r["subsidy"])
                    for r in await conn.fetch(
                        """SELECT p.id, p.account_status,
                                  sum(a.balance) FILTER (WHERE a.purse = 'cash') AS cash,
                                  sum(a.balance) FILTER (WHERE a.purse = 'subsidy') AS subsidy
                             FROM persons p JOIN accounts a ON a.person_id = p.id
                            WHERE p.school_id = $1 GROUP BY p.school_id, p.id""",
                        self.school_id,
                    )
                }
                full = await cards.blacklist(conn, self.school_id, since=None)
                permanent = {
                    r["card_id"]: r["permanent"]
                    for r in await conn.fetch(
                        "SELECT card_id, permanent FROM blacklist_entries WHERE school_id = $1",
                        self.school_id,
                    )
                }
                school_total = await conn.fetchval(
                    "SELECT coalesce(sum(balance), 0) FROM accounts WHERE school_id = $1",
                    self.school_id,
                )
                report = await check_ledger(conn)
                counts = await _counts(conn, self.school_id)
            return db_cards, most_live, persons, full, permanent, school_total, report, counts

        db_cards, most_live, persons, full, permanent, total, report, counts = self.run(look())
        model = self.model
        # each card is where the model says, and no card exists that the model does not know
        assert {i: r["state"] for i, r in db_cards.items()} == {
            i: c.state for i, c in model.cards.items()
        }
        assert most_live <= 1  # at most one live card per person
        for i, h in enumerate(model.holders):
            status, cash, subsidy = persons[h.person_id]
            assert (status, cash, subsidy) == (
                "closed" if h.closed else "active",
                h.cash,
                0,
            ), (i, h, persons[h.person_id])
        # the blacklist holds exactly the blocked cards, and the permanent ones for ever
        blocked = {c.number for c in model.cards.values() if c.state in BLOCKED}
        reasons = {model.cards[i].number: reason for i, reason in model.reasons.items()}
        assert {e["number"]: e["reason"] for e in full["cards"]} == reasons
        assert set(reasons) == blocked
        assert full["version"] == model.version
        assert permanent == model.listed
        for card_id in model.ever_permanent:
            assert permanent.get(card_id) is True, f"permanent card {card_id} left the list"
        # a device that syncs every step holds the same list as a fresh full download
        self.device_version = self.run(self._sync(self.device_list, self.device_version))
        assert {n: e["reason"] for n, e in self.device_list.items()} == reasons
        # what every action leaves behind, counted
        assert (counts["audit"], counts["events"], counts["journal"]) == (
            model.audit,
            model.events,
            model.journal,
        )
        # money is neither made nor lost
        assert report.ok, report.violations
        assert total == 0


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_cards_behave_like_their_model(
    db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # argon2 costs ~0.1 s per user and every example signs up six; the hash is not under test
    fixed = auth.hash_password("model-password")
    monkeypatch.setattr(auth, "hash_password", lambda _password: fixed)
    env = Env(db_url)

    async def foreign_operator() -> Actor:
        async with env.pool.acquire() as conn:
            other = await make_school(conn, "KFOREIGN")
            user = await make_user(conn, "foreign-card-center", "card_center", other.id)
            return await auth.load_actor(conn, user)

    CardMachine.env = env
    CardMachine.settings = settings
    CardMachine.foreign = env.run(foreign_operator())
    CardMachine.seen = collections.Counter()
    try:
        run_machine(
            CardMachine,
            settings=run_settings(
                max_examples=100,
                stateful_step_count=40,
                # the same sequences every run, so the coverage check below cannot flake;
                # CC_MODEL_RANDOM=1 explores new ones (and keeps failures in .hypothesis/)
                derandomize=not os.environ.get("CC_MODEL_RANDOM"),
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        env.close()
    # the run took every path: each action both done and refused, for each kind of refusal
    seen = CardMachine.seen
    print(sorted(seen.items()))
    for action in ("issue", *SOURCES, "expire", "pay"):
        assert seen[action, "ok"] > 0, f"{action} never succeeded: {seen}"
        assert sum(n for (a, o), n in seen.items() if a == action and o != "ok") > 0, action
    for code in ("NOT_FOUND", "ROLE_REQUIRED", "CARD_TRANSITION_REFUSED", "VALIDATION_FAILED"):
        assert any(o == code for _, o in seen), f"no action was refused with {code}"
    for code in ("CARD_ALREADY_HELD", "INSUFFICIENT_FUNDS"):
        assert seen["issue", code] + seen["replace", code] > 0, code
