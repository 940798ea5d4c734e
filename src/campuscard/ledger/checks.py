"""The ledger's invariants, proven over the whole database (``campuscard ledger check``).

I1 the sum over all accounts is zero; I2 every transaction nets to zero; I3 no account below
its floor; I4 cached balance = sum of postings, versions run 1..n without gaps, and each
posting's balance_after is the running sum. Holds: every account's ``held`` is the sum of its
pending holds, no available balance (balance - held) is below the floor, and no hold stays
open more than two expiry periods past its expiry (the expiry job runs). Escrowed orders (the
tier between the buyer's purse and the merchant): an open order's current hold is pending and
holds exactly what is neither released nor refunded, an ended order holds nothing, and what an
order released is what its holds captured. Credit lines are purse floors below zero, so I3
covers them.

The three tiers money passes through (decision 0261): **held** money (a purse's holds, the
virtual account orders and sessions are paid into) moved out only as its hold says — a captured
hold booked exactly what it captured from its purse to its payee (T1; that a voided or expired
hold captured nothing the table's CHECKs keep); the **settlement-center** account (the cash
purse the bank tops up automatically below a threshold) was never lifted above its target by an
automatic top-up (T2); **bank clearing** holds exactly what the bank transfers' states say is
in flight or done — a payout's hold while pending, in doubt or posted, nothing once refused or
reversed, a posted load's amount out (T3). Payroll: every line of a paid batch has its one
effect, a booking of its amount from the payroll account or a payroll payout of its amount to
its staff member (P1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from campuscard.db.pool import Conn
from campuscard.db.tx import transaction
from campuscard.ledger.holds_rules import EXPIRY_PERIOD_SECONDS


@dataclass
class LedgerReport:
    accounts: int = 0
    transactions: int = 0
    postings: int = 0
    total_balance: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


_CHECKS: list[tuple[str, str]] = [
    (
        "I1 balances do not sum to zero",
        "SELECT 'sum of balances = ' || sum(balance) FROM accounts HAVING sum(balance) <> 0",
    ),
    (
        "I2 transaction does not net to zero",
        """SELECT 'tx ' || tx_id || ' nets ' || sum(amount) FROM postings
           GROUP BY tx_id HAVING sum(amount) <> 0 LIMIT 20""",
    ),
    (
        "I3 account below its floor",
        """SELECT 'account ' || id || ' balance ' || balance || ' held ' || held ||
                  ' floor ' || floor FROM accounts
           WHERE floor IS NOT NULL AND balance - held < floor LIMIT 20""",
    ),
    (
        "I4 cached balance differs from postings",
        """SELECT 'account ' || a.id || ' cached ' || a.balance || '/v' || a.version ||
                  ' postings ' || coalesce(p.total, 0) || '/n' || coalesce(p.n, 0) ||
                  ' max v' || coalesce(p.maxv, 0)
             FROM accounts a
             LEFT JOIN (SELECT account_id, sum(amount) AS total, count(*) AS n,
                               max(version) AS maxv, min(version) AS minv
                          FROM postings GROUP BY account_id) p ON p.account_id = a.id
            WHERE a.balance <> coalesce(p.total, 0) OR a.version <> coalesce(p.n, 0)
               OR coalesce(p.maxv, 0) <> coalesce(p.n, 0) OR coalesce(p.minv, 1) <> 1
            LIMIT 20""",
    ),
    (
        "I4 posting balance_after is not the running sum",
        """SELECT 'posting ' || id || ' balance_after ' || balance_after || ' running ' || running
             FROM (SELECT id, balance_after,
                          sum(amount) OVER (PARTITION BY account_id ORDER BY version) AS running
                     FROM postings) s
            WHERE balance_after <> running LIMIT 20""",
    ),
    (
        "H1 held differs from the open holds",
        """SELECT 'account ' || a.id || ' held ' || a.held || ' open holds ' || coalesce(h.total, 0)
             FROM accounts a
             LEFT JOIN (SELECT account_id, sum(amount) AS total FROM holds
                         WHERE state = 'pending' GROUP BY account_id) h ON h.account_id = a.id
            WHERE a.held <> coalesce(h.total, 0) LIMIT 20""",
    ),
    (
        "H2 hold open past its expiry",
        f"""SELECT 'hold ' || school_id || '/' || id || ' expired at ' || expires_at FROM holds
             WHERE state = 'pending'
               AND expires_at < now() - interval '{2 * EXPIRY_PERIOD_SECONDS} seconds'
             LIMIT 20""",
    ),
    (
        "O1 an open order's hold differs from what it still holds",
        """SELECT 'order ' || o.school_id || '/' || o.id || ' holds '
                  || (o.amount - o.released - o.refunded) || ', its hold '
                  || coalesce(h.state || ' ' || h.amount, 'missing')
             FROM orders o
             LEFT JOIN holds h ON h.school_id = o.school_id
                  AND h.hold_key = 'order-' || o.school_id || '-' || o.id || '-' || o.hold_seq
            WHERE o.state IN ('wait_seller_send', 'wait_buyer_confirm', 'disputed')
              AND (h.id IS NULL OR h.state <> 'pending'
                   OR h.amount <> o.amount - o.released - o.refunded)
            LIMIT 20""",
    ),
    (
        "O2 an ended or unpaid order still holds money",
        """SELECT 'order ' || o.school_id || '/' || o.id || ' ' || o.state || ' hold ' || h.hold_key
             FROM orders o JOIN holds h ON h.school_id = o.school_id AND h.owner_kind = 'order'
                  AND h.owner_id = o.id::text AND h.state = 'pending'
            WHERE o.state IN ('wait_buyer_pay', 'finished', 'closed') LIMIT 20""",
    ),
    (
        "O3 an order released other than its holds captured",
        """SELECT 'order ' || o.school_id || '/' || o.id || ' released ' || o.released
                  || ' captured ' || coalesce(c.total, 0)
             FROM orders o
             LEFT JOIN (SELECT school_id, owner_id, sum(captured) AS total FROM holds
                         WHERE owner_kind = 'order' GROUP BY school_id, owner_id) c
                    ON c.school_id = o.school_id AND c.owner_id = o.id::text
            WHERE o.released <> coalesce(c.total, 0) LIMIT 20""",
    ),
]


_TIERS: list[tuple[str, str]] = [
    (
        "T1 held money moved other than its hold says",
        """SELECT 'hold ' || h.school_id || '/' || h.id || ' ' || h.state || ' captured '
                  || h.captured || ', booked ' || coalesce(p.from_purse, 0) || ' from its purse, '
                  || coalesce(p.to_payee, 0) || ' to its payee'
             FROM holds h
             LEFT JOIN LATERAL (
                  SELECT -sum(amount) FILTER (WHERE account_id = h.account_id) AS from_purse,
                         sum(amount) FILTER (WHERE account_id = h.payee_account_id) AS to_payee
                    FROM postings WHERE school_id = h.school_id AND tx_id = h.tx_id) p ON true
            WHERE h.state = 'captured'
              AND (coalesce(p.from_purse, 0) <> h.captured
                   OR coalesce(p.to_payee, 0) <> h.captured)
            LIMIT 20""",
    ),
    (
        "T2 an automatic top-up lifted the settlement-center account above its target",
        """SELECT 'bank transfer ' || t.school_id || '/' || t.id || ' took account '
                  || p.account_id || ' to ' || p.balance_after || ', target ' || t.target
             FROM bank_transfers t
             JOIN postings p ON p.school_id = t.school_id AND p.tx_id = t.tx_id AND p.amount > 0
             JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
                  AND a.kind = 'purse'
            WHERE t.origin = 'auto' AND t.direction = 'load' AND t.status = 'posted'
              AND t.target IS NOT NULL AND p.balance_after > t.target
            LIMIT 20""",
    ),
    (
        "T3 bank clearing differs from what the bank transfers' states say",
        """SELECT 'bank transfer ' || school_id || '/' || id || ' ' || direction || ' '
                  || status || ' moved ' || moved || ' in bank_clearing, expected ' || expected
             FROM (SELECT t.school_id, t.id, t.direction, t.status,
                          CASE WHEN t.direction = 'payout'
                                    AND t.status IN ('pending', 'unknown', 'reversing', 'posted')
                               THEN t.amount
                               WHEN t.direction = 'load' AND t.status = 'posted' THEN -t.amount
                               ELSE 0 END AS expected,
                          coalesce((SELECT sum(p.amount) FROM postings p
                                      JOIN accounts a ON a.school_id = p.school_id
                                           AND a.id = p.account_id AND a.kind = 'system'
                                           AND a.system_code = 'bank_clearing'
                                     WHERE p.school_id = t.school_id
                                       AND p.tx_id IN (SELECT DISTINCT x FROM unnest(ARRAY[
                                               t.hold_tx_id, t.tx_id, t.release_tx_id]) AS x)),
                                   0) AS moved
                     FROM bank_transfers t) m
            WHERE moved <> expected
            LIMIT 20""",
    ),
    (
        "P1 a payroll line's payment differs from the line",
        """SELECT 'payroll line ' || l.school_id || '/' || l.batch_id || '/' || l.row_no || ' '
                  || l.route || ' ' || l.amount || ': '
                  || coalesce('transfer ' || t.origin || ' ' || t.amount,
                              'booked ' || pay.moved, 'nothing')
             FROM payroll_lines l
             JOIN payroll_batches b ON b.school_id = l.school_id AND b.id = l.batch_id
             LEFT JOIN bank_transfers t ON t.school_id = l.school_id AND t.id = l.transfer_id
             LEFT JOIN LATERAL (
                  SELECT -sum(p.amount) AS moved FROM postings p
                    JOIN accounts a ON a.school_id = p.school_id AND a.id = p.account_id
                         AND a.kind = 'system' AND a.system_code = 'payroll_clearing'
                   WHERE p.school_id = l.school_id AND p.tx_id = l.tx_id) pay ON true
            WHERE (b.paid_at IS NULL) <> (l.tx_id IS NULL AND l.transfer_id IS NULL)
               OR (l.tx_id IS NOT NULL AND pay.moved IS DISTINCT FROM l.amount)
               OR (l.transfer_id IS NOT NULL
                   AND (t.amount <> l.amount OR t.origin <> 'payroll'
                        OR t.direction <> 'payout' OR t.person_id <> l.person_id))
            LIMIT 20""",
    ),
]


async def check_ledger(conn: Conn) -> LedgerReport:
    report = LedgerReport()
    # one snapshot for every check, so concurrent bookings cannot produce false alarms
    async with transaction(conn, isolation="repeatable_read", readonly=True) as tx:
        counts = await tx.fetchrow(
            """SELECT (SELECT count(*) FROM accounts) AS accounts,
                      (SELECT count(*) FROM journal_tx) AS transactions,
                      (SELECT count(*) FROM postings) AS postings,
                      (SELECT coalesce(sum(balance), 0) FROM accounts) AS total"""
        )
        assert counts is not None
        report.accounts = counts["accounts"]
        report.transactions = counts["transactions"]
        report.postings = counts["postings"]
        report.total_balance = int(counts["total"])
        for label, sql in _CHECKS + _TIERS:
            for row in await tx.fetch(sql):
                report.violations.append(f"{label}: {row[0]}")
    return report
