"""The offline overdraft: what offline sales took beyond a holder's purses is owed to the school
(offline_debts, the school's offline_receivable account) and the next top-up repays it first.

Every top-up (counter deposit, online top-up, bank transfer 圈存) calls ``repay_overdraft`` in its
own transaction right after crediting the cash purse (the database function
offline/db/cc_offline_repay.sql books it).
"""

from __future__ import annotations

from campuscard.credit import lines as credit_lines
from campuscard.db.tx import Tx


async def repay_overdraft(tx: Tx, school_id: int, person_id: int) -> int:
    """Repay the holder's offline debt from the cash purse as far as it now allows; fen repaid."""
    repaid: int = await tx.fetchval("SELECT cc_offline_repay($1, $2)", school_id, person_id)
    await credit_lines.after_topup(tx, school_id, person_id)  # an overdue credit line's stop
    return repaid
