"""Answer models several routers share: a holder's balances, a proposal waiting for a second
person (four eyes on money), a payment as listed, the card blacklist."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from campuscard.api.routes.approvals import ApprovalOut


class BalancesOut(BaseModel):
    cash: str = Field(description="yuan in the cash purse")
    subsidy: str = Field(description="yuan in the subsidy purse")
    total: str = Field(description="yuan in both purses")
    held: str = Field(description="yuan set aside by open holds")
    available: str = Field(description="yuan that may be spent: total less held")


class PersonBalancesOut(BaseModel):
    """A person's balances where a purse may not be opened yet (it is then left out)."""

    cash: str | None = Field(default=None, description="yuan (once the purse is opened)")
    subsidy: str | None = Field(default=None, description="yuan (once the purse is opened)")
    total: str = Field(description="yuan in both purses")
    held: str = Field(description="yuan set aside by open holds")
    available: str = Field(description="yuan that may be spent: total less held")


class PendingApprovalOut(BaseModel):
    status: str = Field(description='"pending_approval": nothing happens until approved')
    approval: ApprovalOut = Field(description="the proposal a second person decides on")


PENDING_APPROVAL: dict[int | str, dict[str, Any]] = {
    202: {
        "model": PendingApprovalOut,
        "description": "proposed: a second person approves it at /approvals before it happens",
    }
}


class PaymentRowOut(BaseModel):
    id: int
    business_date: dt.date
    created_at: dt.datetime
    merchant_id: int
    merchant: str = Field(description="the merchant's name")
    outlet_id: int | None
    outlet: str | None = Field(description="the outlet's name")
    terminal_id: int
    terminal: str = Field(description="the terminal's serial number")
    channel: str
    method: str = Field(description='how the holder paid: "card" or "code"')
    person_id: int
    amount: str = Field(description="yuan paid")
    from_cash: str = Field(description="yuan taken from the cash purse")
    from_subsidy: str = Field(description="yuan taken from the subsidy purse")
    refunded: str = Field(description="yuan refunded so far")
    status: str
    client_id: str = Field(description="the terminal's id of the payment")


class BlacklistCardOut(BaseModel):
    number: str = Field(description="the printed card number")
    uid: str | None = Field(description="the chip's UID, once known")
    reason: str
    version: int = Field(description="the blacklist version that added it")


class BlacklistRemovedOut(BaseModel):
    number: str
    uid: str | None
    version: int = Field(description="the blacklist version that removed it")


class BlacklistOut(BaseModel):
    version: int = Field(description="the school's blacklist version now")
    full: bool = Field(description="true: ``cards`` is the whole list; false: a delta")
    since: int | None = Field(
        default=None, description="the version the delta starts from (only in a delta)"
    )
    cards: list[BlacklistCardOut] = Field(description="the whole list (a full answer only)")
    added: list[BlacklistCardOut] = Field(description="added since ``since`` (a delta only)")
    removed: list[BlacklistRemovedOut] = Field(description="removed since ``since``")


class PaidFromOut(BaseModel):
    cash: str = Field(description="yuan from the cash purse")
    subsidy: str = Field(description="yuan from the subsidy purse")


class PursesOut(BaseModel):
    cash: str = Field(description="yuan in the cash purse")
    subsidy: str = Field(description="yuan in the subsidy purse")


class ReceiptOut(BaseModel):
    """A booked payment, as the till prints it (a retry with the same client id replays it)."""

    result: str = Field(description='"approved"')
    payment_id: int
    client_id: str = Field(description="the terminal's id of the payment")
    receipt_no: str = Field(description='"P" + business date + payment id')
    amount: str = Field(description="yuan paid")
    paid_from: PaidFromOut
    balance: str = Field(description="yuan in the purses after it, held money included")
    available: str = Field(description="yuan that may still be spent")
    balances: PursesOut
    holder: str = Field(description="the holder's name, masked")
    card_number: str | None = Field(description='the card\'s last four, "****1234"; none by code')
    method: str = Field(description='"card" or "code"')
    merchant: str
    outlet: str | None
    terminal: str = Field(description="the terminal's serial number")
    channel: str
    business_date: dt.date
    booked_at: dt.datetime
