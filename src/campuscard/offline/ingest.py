"""Where offline sales come in: a till's upload is stored exactly once by (device, sequence), and
every card it touched is settled along its chain (offline/rules.py). An upload is two short
transactions (``ingest``): the first stores every record and settles the cards no other upload
is settling, the second settles the cards the first skipped (decision 0330).

- A record whose signature does not verify is refused and not stored. A sequence number seen
  before is a duplicate (nothing happens again); the same number with another record is refused
  (``SEQUENCE_REUSED``) and the stored one stands.
- A record for an unknown card, another card's UID, or a card that was reported lost, replaced,
  cancelled or expired before the sale is stored as refused (the till's list was out of date;
  the holder does not pay).
- The others wait on their card's chain and settle in counter order as soon as the counter
  before them has arrived, from whichever device, in this upload or a later one; a record
  that waited longer than the school's ``chain_wait_hours`` settles with the gap named
  (``settle_overdue``, a periodic job).
- A settled record is paid by the purses in the school's order as far as their available money
  goes; the rest is booked to the school's offline_receivable and owed by the holder
  (offline_debts), repaid first by the next top-up (offline/overdraft.py).
- Each settling transaction books one journal transaction per merchant shard it credits
  (purses → shard, receivable → shard), the uploading till's serial as the actor; every
  settled record names its journal transaction, and clearing counts each till's sales from
  those records (decision 0390).
- Every record that overdrew is told to monitoring (``offline_overdraft``: the holder hears of it
  at once, in words, if the school watches that rule), one alert per record.

Lock order: the till's row (offline_devices), card chain heads (card id order; the first
transaction skips those another one holds), the holders' purses (id order), one merchant
shard per merchant (one no other upload holds; only when all are held, the uploader's in id
order, waited for), the receivable (cc_post), debts (holder order) and the blacklist head, then
monitoring's rows (holder order). A top-up locks purse, debt, then the receivable.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from campuscard.config import Settings
from campuscard.db.pool import Conn, PgPool
from campuscard.db.tx import Tx, owns_transaction, require_idle, savepoint, transaction
from campuscard.ledger import postings
from campuscard.ledger.purse_order import policy_of
from campuscard.monitoring import signals
from campuscard.offline import rules
from campuscard.payments import terminals
from campuscard.payments.terminals import SignedTerminal
from campuscard.platform import signing

BLOCKED_BEFORE_SALE = ("lost", "replaced", "cancelled", "expired")


@dataclass(frozen=True)
class RecordRefusal:
    seq: int
    code: str
    message: str


@dataclass
class UploadAnswer:
    upload_id: int
    received: int
    accepted: int
    duplicates: int
    refused: list[RecordRefusal]
    settled: int
    waiting: int
    chain_breaks: int
    overdrafts: int
    contiguous_seq: int  # every sequence number up to this one has arrived
    missing: list[list[int]]  # [first, last] ranges above it not seen yet: send them again


@dataclass
class Settled:
    count: int = 0
    chain_breaks: int = 0
    overdrafts: int = 0
    overdraft_fen: int = 0
    seqs: set[tuple[int, int]] = field(default_factory=set)  # (terminal, seq) settled
    # of the new records given (not stored yet): how each was booked
    booked: dict[tuple[int, int], Booked] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)  # cards another upload holds (skip_locked)


@dataclass(frozen=True)
class Booked:
    broke: str | None
    cash: int
    subsidy: int
    overdraft: int
    tx_id: int


@dataclass(frozen=True)
class Overdrawn:
    """A settled record the purses could not cover in full (monitoring hears of each)."""

    person_id: int
    terminal_id: int
    seq: int
    amount: int
    shortfall: int
    made_at: datetime


def _key_for(settings: Settings, device: SignedTerminal, version: int) -> bytes | None:
    t = device.terminal
    if version not in (t.key_version, t.prev_key_version):
        return None
    return signing.derive_terminal_key(settings.master_key.get_secret_value(), t.sn, version)


def verify_records(
    settings: Settings, device: SignedTerminal, records: list[rules.Record]
) -> tuple[list[rules.Record], list[RecordRefusal]]:
    """The records whose signature holds, and a refusal for each other one."""
    good: list[rules.Record] = []
    bad: list[RecordRefusal] = []
    seen: set[int] = set()
    for r in records:
        if r.seq in seen:
            bad.append(
                RecordRefusal(r.seq, "SEQUENCE_REPEATED", "this upload has the number twice")
            )
            continue
        seen.add(r.seq)
        key = _key_for(settings, device, r.key_version)
        if key is None:
            bad.append(
                RecordRefusal(r.seq, "RECORD_KEY_RETIRED", "signed with a retired key version")
            )
        elif not rules.signature_ok(key, device.terminal.sn, r):
            bad.append(
                RecordRefusal(r.seq, "RECORD_SIGNATURE_INVALID", "the record's signature is wrong")
            )
        else:
            good.append(r)
    return good, bad


async def upload(
    pool: PgPool, settings: Settings, device: SignedTerminal, records: list[rules.Record]
) -> UploadAnswer:
    """A till's batch (the upload route): signatures checked here, the rest in ``ingest``."""
    good, refused = verify_records(settings, device, records)
    async with pool.acquire() as conn:
        return await ingest(
            conn, device.school_id, device.id, good, refused, len(records), device=device
        )


async def ingest(
    conn: Conn,
    school_id: int,
    terminal_id: int,
    good: list[rules.Record],
    refused: list[RecordRefusal],
    received: int,
    *,
    device: SignedTerminal | None = None,
) -> UploadAnswer:
    """Store and settle records whose signatures were checked, in two short transactions on
    one connection (the upload route and the benchmark call this; ``device``: the request
    whose nonce is recorded with the records).

    The first stores every record and settles the cards whose chain heads no other upload
    holds (``FOR UPDATE SKIP LOCKED``) and whose records the purses cover, and commits
    without waiting for any upload. The second settles the cards it skipped (another upload
    held them, or they overdraw: the receivable is one row), once their holder has committed:
    only it waits, on those cards alone, and the answer counts what either settled. Before
    both, the chain heads of the upload's cards are made in a statement of their own, so that
    the first transaction never waits on another one's new head either (decision 0330)."""
    require_idle(conn)
    # the upload's cards, and their chain heads made in the same statement; an empty head lost
    # in a crash is made again (a missing head counts as skipped, and the second transaction
    # makes it), so this statement does not wait for its commit's flush
    cards = _by_number(
        await conn.fetch(
            """WITH c AS (
                 SELECT id, number, uid, person_id, state, state_changed_at FROM cards
                  WHERE school_id = $1 AND number = ANY($2::text[])),
               heads AS (
                 INSERT INTO offline_card_chains(school_id, card_id, last_counter, last_total,
                        last_made_at)
                 SELECT $1, c.id, 0, 0, NULL
                   FROM c, (SELECT set_config('synchronous_commit', 'off', true)) AS local
                  ORDER BY c.id
                 ON CONFLICT (school_id, card_id) DO NOTHING)
               SELECT * FROM c""",
            school_id,
            sorted({r.card_number for r in good}),
        )
    )
    async with transaction(conn) as tx:
        if device is not None:
            await terminals.record_nonce(tx, device)
        stored = await _store_and_settle(
            tx, school_id, terminal_id, good, refused, received, skip_locked=True, cards=cards
        )
    if not stored.skipped:
        return stored.answer
    async with transaction(conn) as tx:
        later = await settle_cards(
            tx, school_id, stored.skipped, give_up_before=None, via=terminal_id
        )
        return await _settled_later(tx, school_id, stored, later)


async def ingest_verified(
    tx: Tx,
    school_id: int,
    terminal_id: int,
    good: list[rules.Record],
    refused: list[RecordRefusal],
    received: int,
) -> UploadAnswer:
    """``ingest`` in the caller's transaction, waiting for every card another upload holds
    (the demo campus and tests load uploads this way)."""
    stored = await _store_and_settle(
        tx, school_id, terminal_id, good, refused, received, skip_locked=False
    )
    return stored.answer


def _by_number(rows: list[Any]) -> dict[str, Any]:
    return {r["number"]: r for r in rows}


@dataclass
class _Stored:
    answer: UploadAnswer
    skipped: list[int]  # cards another upload was settling: settled after the commit
    waiting: set[tuple[int, int]]  # this upload's records not settled yet


async def _store_and_settle(
    tx: Tx,
    school_id: int,
    terminal_id: int,
    good: list[rules.Record],
    refused: list[RecordRefusal],
    received: int,
    *,
    skip_locked: bool,
    cards: dict[str, Any] | None = None,
) -> _Stored:
    """Store the upload and settle what its cards' chains allow. The records settled now are
    stored settled (no second write); those that wait are stored waiting. ``cards``: the
    upload's cards by number, read before the transaction (read here when not given)."""
    refused = list(refused)
    upload_id: int = await tx.fetchval(
        """INSERT INTO offline_uploads(school_id, terminal_id, business_date, received, accepted,
                  duplicates, rejected, settled, waiting, chain_breaks, overdrafts,
                  overdraft_fen, missing)
           VALUES ($1, $2, cc_business_date($1), $3, 0, 0, 0, 0, 0, 0, 0, 0, 0) RETURNING id""",
        school_id,
        terminal_id,
        received,
    )
    # the till's row, locked: its uploads are stored one at a time, so the numbers found
    # stored below are all there is (a resend racing the first send waits here); the upload's
    # time is set with its numbers below (Citus refuses now() in DO UPDATE)
    device_row = await tx.fetchrow(
        """INSERT INTO offline_devices(school_id, terminal_id) VALUES ($1, $2)
           ON CONFLICT (school_id, terminal_id)
           DO UPDATE SET last_upload_at = offline_devices.last_upload_at
           RETURNING contiguous_seq, max_seq""",
        school_id,
        terminal_id,
    )
    assert device_row is not None
    stored = {
        row["seq"]: row["signature"]
        for row in await tx.fetch(
            """SELECT seq, signature FROM offline_records
                WHERE school_id = $1 AND terminal_id = $2 AND seq = ANY($3::bigint[])""",
            school_id,
            terminal_id,
            [r.seq for r in good],
        )
    }
    duplicates = 0
    fresh: list[rules.Record] = []
    for r in good:
        if r.seq not in stored:
            fresh.append(r)
        elif stored[r.seq] == r.signature:
            duplicates += 1
        else:
            refused.append(
                RecordRefusal(
                    r.seq, "SEQUENCE_REUSED", "another record was stored under this number"
                )
            )
    if cards is None:
        cards = _by_number(
            await tx.fetch(
                """SELECT id, number, uid, person_id, state, state_changed_at FROM cards
                    WHERE school_id = $1 AND number = ANY($2::text[])""",
                school_id,
                list({r.card_number for r in fresh}),
            )
        )
    now = datetime.now(UTC)
    new: list[NewRecord] = []
    refusal_of: dict[int, tuple[str, str]] = {}
    for r in fresh:
        card = cards.get(r.card_number)
        made_at = datetime.fromtimestamp(r.made_at, UTC)
        if card is None:
            refusal_of[r.seq] = ("CARD_UNKNOWN", "no such card in this school")
        elif card["uid"] is not None and card["uid"] != r.card_uid.upper():
            refusal_of[r.seq] = (
                "CARD_UID_MISMATCH",
                "the chip does not belong to this card number",
            )
        elif card["state"] in BLOCKED_BEFORE_SALE and card["state_changed_at"] <= made_at:
            refusal_of[r.seq] = (
                "CARD_BLOCKED_BEFORE_SALE",
                f"the card was {card['state']} before the sale",
            )
        else:
            new.append(
                NewRecord(
                    card_id=card["id"],
                    person_id=card["person_id"],
                    pending=rules.Pending(
                        terminal_id=terminal_id,
                        seq=r.seq,
                        amount=r.amount,
                        made_at=made_at,
                        received_at=now,
                        card_counter=r.card_counter,
                        total_before=r.total_before,
                        total_after=r.total_after,
                    ),
                )
            )
    settled = await settle_cards(
        tx,
        school_id,
        sorted({n.card_id for n in new}),
        give_up_before=None,
        via=terminal_id,
        new=new,
        skip_locked=skip_locked,
    )
    await _insert_records(tx, school_id, terminal_id, upload_id, fresh, cards, refusal_of, settled)
    for seq, (code, message) in sorted(refusal_of.items()):
        refused.append(RecordRefusal(seq, code, message))
    inserted = {r.seq for r in fresh}
    contiguous, missing = await _advance_device(
        tx,
        school_id,
        terminal_id,
        int(device_row["contiguous_seq"]),
        int(device_row["max_seq"]),
        inserted,
    )
    waiting = {
        (terminal_id, n.pending.seq)
        for n in new
        if (terminal_id, n.pending.seq) not in settled.seqs
    }
    answer = UploadAnswer(
        upload_id=upload_id,
        received=received,
        accepted=len(inserted) - len(refusal_of),
        duplicates=duplicates,
        refused=sorted(refused, key=lambda x: x.seq),
        settled=settled.count,
        waiting=len(waiting),
        chain_breaks=settled.chain_breaks,
        overdrafts=settled.overdrafts,
        contiguous_seq=contiguous,
        missing=missing,
    )
    await _save_counts(tx, school_id, answer, settled.overdraft_fen)
    return _Stored(answer, settled.skipped, waiting)


async def _insert_records(
    tx: Tx,
    school_id: int,
    terminal_id: int,
    upload_id: int,
    fresh: list[rules.Record],
    cards: dict[str, Any],
    refusal_of: dict[int, tuple[str, str]],
    settled: Settled,
) -> None:
    """The upload's new records, each in its final state of this transaction: refused,
    settled (with its split and journal transaction), or waiting."""
    rows: list[tuple[Any, ...]] = []
    for r in fresh:
        card = cards.get(r.card_number)
        booked = settled.booked.get((terminal_id, r.seq))
        refusal = refusal_of.get(r.seq)
        state = "refused" if refusal else "settled" if booked else "waiting"
        rows.append(
            (
                r.seq,
                r.signature,
                r.card_number,
                r.card_uid.upper(),
                None if card is None else card["id"],
                None if card is None else card["person_id"],
                r.amount,
                datetime.fromtimestamp(r.made_at, UTC),
                r.card_counter,
                r.total_before,
                r.total_after,
                state,
                None if refusal is None else refusal[0],
                None if booked is None else booked.broke,
                0 if booked is None else booked.cash,
                0 if booked is None else booked.subsidy,
                0 if booked is None else booked.overdraft,
                None if booked is None else booked.tx_id,
            )
        )
    if not rows:
        return
    columns = [list(col) for col in zip(*rows, strict=True)]
    # a plain insert: the till's row lock keeps every number new (a clash fails the upload
    # rather than book a record twice)
    await tx.execute(
        """INSERT INTO offline_records(school_id, terminal_id, upload_id, seq, signature,
                  card_number, card_uid, card_id, person_id, amount, made_at, card_counter,
                  total_before, total_after, state, refusal, chain_break, from_cash,
                  from_subsidy, overdraft, tx_id, business_date, settled_at)
           SELECT $1, $2, $3, u.*,
                  CASE WHEN u.tx_id IS NOT NULL THEN (SELECT cc_business_date($1)) END,
                  CASE WHEN u.tx_id IS NOT NULL THEN now() END
             FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[],
                  $9::bigint[], $10::bigint[], $11::timestamptz[], $12::bigint[], $13::bigint[],
                  $14::bigint[], $15::text[], $16::text[], $17::text[], $18::bigint[],
                  $19::bigint[], $20::bigint[], $21::bigint[])
                  AS u(seq, signature, card_number, card_uid, card_id, person_id, amount,
                       made_at, card_counter, total_before, total_after, state, refusal,
                       chain_break, from_cash, from_subsidy, overdraft, tx_id)""",
        school_id,
        terminal_id,
        upload_id,
        *columns,
    )


async def _save_counts(tx: Tx, school_id: int, answer: UploadAnswer, overdraft_fen: int) -> None:
    await tx.execute(
        """UPDATE offline_uploads SET accepted = $3, duplicates = $4, rejected = $5, settled = $6,
                  waiting = $7, chain_breaks = $8, overdrafts = $9,
                  overdraft_fen = overdraft_fen + $10, missing = $11
            WHERE school_id = $1 AND id = $2""",
        school_id,
        answer.upload_id,
        answer.accepted,
        answer.duplicates,
        len(answer.refused),
        answer.settled,
        answer.waiting,
        answer.chain_breaks,
        answer.overdrafts,
        overdraft_fen,
        rules.count_missing(answer.missing),
    )


async def _settled_later(tx: Tx, school_id: int, stored: _Stored, later: Settled) -> UploadAnswer:
    """The answer and the upload's counts after the second transaction settled the cards the
    first one skipped (its records, and others' that waited for them)."""
    first = stored.answer
    answer = replace(
        first,
        settled=first.settled + later.count,
        waiting=len(stored.waiting - later.seqs),
        chain_breaks=first.chain_breaks + later.chain_breaks,
        overdrafts=first.overdrafts + later.overdrafts,
    )
    await _save_counts(tx, school_id, answer, later.overdraft_fen)
    return answer


async def _advance_device(
    tx: Tx, school_id: int, terminal_id: int, contiguous: int, max_seq: int, inserted: set[int]
) -> tuple[int, list[list[int]]]:
    max_seq = max([max_seq, *inserted])
    above: list[int] = []
    if max_seq > contiguous:
        above = [
            int(s)
            for s in await tx.fetchval(
                """SELECT coalesce(array_agg(seq), '{}') FROM offline_records
                    WHERE school_id = $1 AND terminal_id = $2 AND seq > $3""",
                school_id,
                terminal_id,
                contiguous,
            )
        ]
    contiguous = rules.advance_contiguous(contiguous, above)
    missing = rules.missing_ranges(contiguous, [s for s in above if s > contiguous])
    await tx.execute(
        """UPDATE offline_devices SET contiguous_seq = $3, max_seq = $4, records = records + $5,
                  last_upload_at = now()
            WHERE school_id = $1 AND terminal_id = $2""",
        school_id,
        terminal_id,
        contiguous,
        max_seq,
        len(inserted),
    )
    return contiguous, missing


@dataclass(frozen=True)
class NewRecord:
    """A record of the upload being stored, on a known card, not written yet."""

    card_id: int
    person_id: int
    pending: rules.Pending


async def settle_cards(
    tx: Tx,
    school_id: int,
    card_ids: list[int],
    *,
    give_up_before: datetime | None,
    via: int | None = None,
    new: Sequence[NewRecord] = (),
    skip_locked: bool = False,
) -> Settled:
    """Settle what can settle on these cards' chains (see the module docstring). ``via``: the
    device whose upload this is (its merchant shards take the credits, see ``_book``).
    ``new``: records of that upload not stored yet; the caller stores them as
    ``Settled.booked`` says. With ``skip_locked`` a card whose head another transaction holds,
    or whose records would overdraw, is left alone and named in ``Settled.skipped`` (its head
    must exist already)."""
    done = Settled()
    if not card_ids:
        return done
    school = await tx.fetchrow("SELECT settings FROM schools WHERE id = $1", school_id)
    assert school is not None
    settings = school["settings"]
    settings = json.loads(settings) if isinstance(settings, str) else dict(settings or {})
    limits = rules.risk_limits(settings)
    order = policy_of(settings)
    now = datetime.now(UTC)
    cutoff = give_up_before or now - timedelta(hours=limits.chain_wait_hours)
    if not skip_locked:
        await tx.execute(
            """INSERT INTO offline_card_chains(school_id, card_id, last_counter, last_total,
                      last_made_at)
               SELECT $1, c, 0, 0, NULL FROM unnest($2::bigint[]) c ORDER BY c
               ON CONFLICT (school_id, card_id) DO NOTHING""",
            school_id,
            card_ids,
        )
    # heads first, in card id order: two uploads touching one card settle one after the other
    heads = {
        r["card_id"]: r
        for r in await tx.fetch(
            """SELECT card_id, last_counter, last_total, last_made_at FROM offline_card_chains
                WHERE school_id = $1 AND card_id = ANY($2::bigint[]) ORDER BY card_id
                  FOR UPDATE"""
            + (" SKIP LOCKED" if skip_locked else ""),
            school_id,
            card_ids,
        )
    }
    done.skipped = [c for c in card_ids if c not in heads]
    waiting_rows = await tx.fetch(
        """SELECT terminal_id, seq, card_id, person_id, amount, made_at, received_at,
                  card_counter, total_before, total_after
             FROM offline_records
            WHERE school_id = $1 AND card_id = ANY($2::bigint[]) AND state = 'waiting'
            ORDER BY card_id, card_counter""",
        school_id,
        sorted(heads),
    )
    by_card: dict[int, list[rules.Pending]] = defaultdict(list)
    person_of: dict[int, int] = {}
    for w in waiting_rows:
        person_of[w["card_id"]] = w["person_id"]
        by_card[w["card_id"]].append(
            rules.Pending(
                terminal_id=w["terminal_id"],
                seq=w["seq"],
                amount=w["amount"],
                made_at=w["made_at"],
                received_at=w["received_at"],
                card_counter=w["card_counter"],
                total_before=w["total_before"],
                total_after=w["total_after"],
            )
        )
    unstored: set[tuple[int, int]] = set()
    for n in new:
        if n.card_id in heads:
            person_of[n.card_id] = n.person_id
            by_card[n.card_id].append(n.pending)
            unstored.add((n.pending.terminal_id, n.pending.seq))
    if not by_card:
        return done
    persons = sorted(set(person_of.values()))
    purses: dict[int, dict[str, tuple[int, int]]] = defaultdict(
        dict
    )  # person -> purse -> (id, avail)
    for p in await tx.fetch(
        """SELECT id, person_id, purse, balance - held - coalesce(floor, 0) AS available
             FROM accounts
            WHERE school_id = $1 AND kind = 'purse' AND person_id = ANY($2::bigint[])
            ORDER BY id FOR UPDATE""",
        school_id,
        persons,
    ):
        purses[p["person_id"]][p["purse"]] = (p["id"], p["available"])
    online = {
        r["card_id"]: r["at"]
        for r in await tx.fetch(
            """SELECT card_id, max(created_at) AS at FROM payments
                WHERE school_id = $1 AND person_id = ANY($2::bigint[])
                  AND card_id = ANY($3::bigint[])
                GROUP BY card_id""",
            school_id,
            persons,
            list(by_card),
        )
    }
    available: dict[int, dict[str, int]] = {
        person: {purse: avail for purse, (_, avail) in ps.items()} for person, ps in purses.items()
    }
    updates: list[tuple[int, int, str | None, int, int, int]] = []
    new_heads: list[tuple[int, int, int, datetime]] = []
    owed: dict[int, int] = defaultdict(int)
    # per terminal: purse account -> fen (negative), overdraft fen, total fen
    legs: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overdraft_by_terminal: dict[int, int] = defaultdict(int)
    overdrawn: list[Overdrawn] = []
    for card_id in sorted(by_card):
        h = heads[card_id]
        head = rules.ChainHead(
            last_counter=h["last_counter"],
            last_total=h["last_total"],
            last_made_at=h["last_made_at"],
        )
        walk = rules.walk_chain(
            head, by_card[card_id], last_online_at=online.get(card_id), give_up_before=cutoff
        )
        if not walk.settle:
            continue
        person = person_of[card_id]
        # the purses' money after each record, worked out once on a copy: kept if settled now
        left = dict(available.get(person, {}))
        splits = [rules.split_offline(order, left, p.amount) for p, _ in walk.settle]
        if skip_locked and any(split["overdraft"] for split in splits):
            # the receivable is one row every overdrawing upload locks until it commits:
            # such a card is left to the second, short transaction
            done.skipped.append(card_id)
            continue
        available[person] = left
        for (pending, broke), split in zip(walk.settle, splits, strict=True):
            for purse in ("cash", "subsidy"):
                if split[purse]:
                    legs[pending.terminal_id][purses[person][purse][0]] -= split[purse]
            if split["overdraft"]:
                overdraft_by_terminal[pending.terminal_id] += split["overdraft"]
                owed[person] += split["overdraft"]
                overdrawn.append(
                    Overdrawn(
                        person,
                        pending.terminal_id,
                        pending.seq,
                        pending.amount,
                        split["overdraft"],
                        pending.made_at,
                    )
                )
                done.overdrafts += 1
                done.overdraft_fen += split["overdraft"]
            done.chain_breaks += broke is not None
            done.count += 1
            done.seqs.add((pending.terminal_id, pending.seq))
            updates.append(
                (
                    pending.terminal_id,
                    pending.seq,
                    broke,
                    split["cash"],
                    split["subsidy"],
                    split["overdraft"],
                )
            )
        assert walk.head is not None
        assert walk.head.last_made_at is not None
        new_heads.append(
            (card_id, walk.head.last_counter, walk.head.last_total, walk.head.last_made_at)
        )
    if not updates:
        return done
    tx_of, sn_of = await _book(tx, school_id, legs, overdraft_by_terminal, via)
    for terminal_id, seq, broke, cash, subsidy, overdraft in updates:
        if (terminal_id, seq) in unstored:
            done.booked[(terminal_id, seq)] = Booked(
                broke, cash, subsidy, overdraft, tx_of[terminal_id]
            )
    earlier = [u for u in updates if (u[0], u[1]) not in unstored]
    if earlier:
        await tx.execute(
            """UPDATE offline_records o SET state = 'settled', chain_break = u.broke,
                      from_cash = u.cash, from_subsidy = u.subsidy, overdraft = u.overdraft,
                      tx_id = u.tx_id, business_date = (SELECT cc_business_date($1)),
                      settled_at = now()
                 FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[],
                             $7::bigint[], $8::bigint[])
                      AS u(terminal_id, seq, broke, cash, subsidy, overdraft, tx_id)
                WHERE o.school_id = $1 AND o.terminal_id = u.terminal_id AND o.seq = u.seq
                  AND o.state = 'waiting' AND o.card_id = ANY($9::bigint[])""",
            school_id,
            [u[0] for u in earlier],
            [u[1] for u in earlier],
            [u[2] for u in earlier],
            [u[3] for u in earlier],
            [u[4] for u in earlier],
            [u[5] for u in earlier],
            [tx_of[u[0]] for u in earlier],
            sorted(heads),
        )
    await tx.execute(
        """UPDATE offline_card_chains h SET last_counter = u.counter, last_total = u.total,
                  last_made_at = u.made_at, updated_at = now()
             FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::timestamptz[])
                  AS u(card_id, counter, total, made_at)
            WHERE h.school_id = $1 AND h.card_id = u.card_id AND h.card_id = ANY($2::bigint[])""",
        school_id,
        [h[0] for h in new_heads],
        [h[1] for h in new_heads],
        [h[2] for h in new_heads],
        [h[3] for h in new_heads],
    )
    if owed:
        people = sorted(owed)
        await tx.execute(
            """INSERT INTO offline_debts(school_id, person_id, owed, overdrawn_total)
               SELECT $1, p, f, f FROM unnest($2::bigint[], $3::bigint[]) AS u(p, f) ORDER BY p
               ON CONFLICT (school_id, person_id) DO UPDATE
                  SET owed = offline_debts.owed + EXCLUDED.owed,
                      overdrawn_total = offline_debts.overdrawn_total + EXCLUDED.owed,
                      updated_at = EXCLUDED.updated_at""",
            school_id,
            people,
            [owed[p] for p in people],
        )
    # last, in holder order: alerts write rows of their own (alerts, notifications) per holder
    for o in sorted(overdrawn, key=lambda x: (x.person_id, x.terminal_id, x.seq)):
        await signals.offline_overdraft(
            tx,
            school_id,
            o.person_id,
            device=sn_of[o.terminal_id],
            amount=o.amount,
            shortfall=o.shortfall,
            occurred_at=o.made_at,
            ref=f"{sn_of[o.terminal_id]}:{o.seq}",
        )
    return done


async def _book(
    tx: Tx,
    school_id: int,
    legs: dict[int, dict[int, int]],
    overdraft_by_terminal: dict[int, int],
    via: int | None,
) -> tuple[dict[int, int], dict[int, str]]:
    """One journal transaction per merchant shard credited: the purse legs and the overdraft
    of every device of that merchant, to the shard. Returns each device's journal transaction
    (its merchant's) and its serial number.

    Clearing counts the sales per till from the records themselves (each names its device and
    its journal transaction), so the journal need not: one booking per merchant rather than
    one per till keeps the holder's statement naming the merchant, with a few thousandths of
    the bookings (decision 0390).

    The merchant's shard is the one of the uploading device ``via`` (of the record's own device
    when there is none): an upload settles records of many tills (their counters waited for
    this one), and crediting each till's own shard would make every upload lock most shards
    of every canteen. Shards only spread locks; clearing sums them per merchant."""
    terminal_ids = sorted(set(legs) | set(overdraft_by_terminal))
    devices = {
        r["id"]: r
        for r in await tx.fetch(
            """SELECT t.id, t.sn, t.merchant_id, m.name AS merchant_name, m.shards
                 FROM terminals t
                 JOIN merchants m ON m.school_id = t.school_id AND m.id = t.merchant_id
                WHERE t.school_id = $1 AND t.id = ANY($2::bigint[])""",
            school_id,
            terminal_ids,
        )
    }
    shard_of = await _lock_shards(tx, school_id, list(devices.values()), via)
    receivable = await postings.system_account(tx, school_id, "offline_receivable")
    # who booked it: the uploading till (its upload settled them all), or the periodic job
    actor = "system"
    if via is not None:
        actor = devices[via]["sn"] if via in devices else await _serial(tx, school_id, via)
    # the tills of each shard: their legs summed into one booking
    by_shard: dict[int, list[int]] = defaultdict(list)
    for terminal_id in terminal_ids:
        d = devices[terminal_id]
        by_shard[shard_of[d["merchant_id"] if via is not None else terminal_id]].append(terminal_id)
    shards = sorted(by_shard)
    bookings: list[postings.Booking] = []
    for shard in shards:
        purse_legs: dict[int, int] = defaultdict(int)
        overdraft = 0
        for terminal_id in by_shard[shard]:
            for account, fen in legs[terminal_id].items():
                purse_legs[account] += fen
            overdraft += overdraft_by_terminal.get(terminal_id, 0)
        tx_legs = [postings.Leg(acc, fen) for acc, fen in sorted(purse_legs.items()) if fen]
        if overdraft:
            tx_legs.append(postings.Leg(receivable, -overdraft))
        tx_legs.append(postings.Leg(shard, -sum(leg.amount for leg in tx_legs)))
        first = devices[by_shard[shard][0]]
        bookings.append(
            postings.Booking(
                kind="offline_payment",
                legs=tx_legs,
                ref=f"offline:{first['merchant_id']}",
                memo=first["merchant_name"],
                actor=actor,
                meta={"merchant_id": first["merchant_id"], "terminals": by_shard[shard]},
            )
        )
    tx_ids = await postings.post_many(tx, school_id=school_id, bookings=bookings)
    tx_of_shard = dict(zip(shards, tx_ids, strict=True))
    out = {t: tx_of_shard[shard] for shard in shards for t in by_shard[shard]}
    return out, {t: devices[t]["sn"] for t in terminal_ids}


async def _serial(tx: Tx, school_id: int, terminal_id: int) -> str:
    sn: str = await tx.fetchval(
        "SELECT sn FROM terminals WHERE school_id = $1 AND id = $2", school_id, terminal_id
    )
    return sn


class _ShardsBusy(Exception):
    """Every shard of a merchant is held by other uploads."""


async def _lock_shards(
    tx: Tx, school_id: int, devices: list[Any], via: int | None
) -> dict[int, int]:
    """Lock the merchant shards the bookings credit, before the first ``cc_post`` (the purses
    are locked already; the receivable, one row, is locked by the first booking that owes).
    With an uploading device ``via``: one shard per merchant (merchant id -> account), the
    first one no other upload holds, starting at ``via``'s; nobody waits for a shard while
    holding one. Only when every shard of a merchant is held (more uploads at once than
    shards) are they taken as without ``via`` and waited for. Without ``via`` (overdue
    records): each device's own shard (device id -> account), in id order."""
    if via is not None:
        by_merchant = {d["merchant_id"]: d["shards"] for d in devices}
        merchants = sorted(by_merchant)
        try:
            async with savepoint(tx):
                picked = {
                    r["merchant_id"]: r["account_id"]
                    for r in await tx.fetch(
                        """SELECT u.m AS merchant_id,
                                  (SELECT a.id FROM accounts a
                                    WHERE a.school_id = $1 AND a.merchant_id = u.m
                                      AND a.kind = 'merchant'
                                    ORDER BY (a.shard - $4::bigint % u.n + u.n) % u.n
                                    LIMIT 1 FOR UPDATE SKIP LOCKED) AS account_id
                             FROM unnest($2::bigint[], $3::int[]) AS u(m, n) ORDER BY u.m""",
                        school_id,
                        merchants,
                        [by_merchant[m] for m in merchants],
                        via,
                    )
                }
                if None in picked.values():
                    raise _ShardsBusy
                return picked
        except _ShardsBusy:
            pass
    # in id order: two uploads taking the same shards take them one after the other
    rows = await tx.fetch(
        """SELECT d.key, a.id FROM accounts a
             JOIN unnest($2::bigint[], $3::bigint[], $4::int[]) AS d(key, merchant_id, shard)
               ON a.merchant_id = d.merchant_id AND a.shard = d.shard
            WHERE a.school_id = $1 AND a.kind = 'merchant'
            ORDER BY a.id FOR UPDATE OF a""",
        school_id,
        [d["merchant_id"] if via is not None else d["id"] for d in devices],
        [d["merchant_id"] for d in devices],
        [(via if via is not None else d["id"]) % d["shards"] for d in devices],
    )
    return {r["key"]: r["id"] for r in rows}


@owns_transaction
async def do_settle_overdue_school(tx: Tx, school_id: int) -> int:
    """Records that waited too long for a missing card counter settle with the gap named."""
    cards = [
        int(r["card_id"])
        for r in await tx.fetch(
            """SELECT DISTINCT card_id FROM offline_records
                WHERE school_id = $1 AND state = 'waiting'""",
            school_id,
        )
    ]
    settled = await settle_cards(tx, school_id, cards, give_up_before=None)
    return settled.count


async def schools_with_waiting_records(pool: PgPool) -> list[int]:
    rows = await pool.fetch(
        "SELECT DISTINCT school_id FROM offline_records WHERE state = 'waiting'"
    )
    return [int(r["school_id"]) for r in rows]
