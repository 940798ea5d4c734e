-- Card cancellation (services/cards.cancel_card) books the remaining balance to bank_clearing
-- and asks for a payout through the outbox ('payout.requested'); the bank link sends it as a
-- transfer of origin 'card_cancel' whose hold is that booking. One transfer per hold.
ALTER TABLE bank_transfers DROP CONSTRAINT bank_transfers_origin_check;
ALTER TABLE bank_transfers ADD CONSTRAINT bank_transfers_origin_check
    CHECK (origin IN ('holder', 'guardian', 'auto', 'leaving', 'card_cancel'));
CREATE UNIQUE INDEX bank_transfers_one_per_hold ON bank_transfers(hold_tx_id)
    WHERE hold_tx_id IS NOT NULL;
