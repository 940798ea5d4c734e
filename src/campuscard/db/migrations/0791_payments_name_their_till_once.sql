-- A payment's merchant is its till's: the payment named its till and its merchant with a foreign
-- key each (two checks per payment, and the canteen's one merchant row key-share locked by every
-- payment in flight). One key on (school, till, merchant) to the till's row proves both and that
-- they belong together (the till's own key proves the merchant); a till's merchant is never
-- changed. A signed request's nonce no longer checks its till: the till's row is read in the same
-- call, nonces are kept only to refuse a replay, and tills are never deleted. A payment's journal
-- transaction is never looked up by its ref, so payments no longer enter that index.
-- docs/decisions/0381-a-payment-checks-its-till-once.md
ALTER TABLE terminals ADD CONSTRAINT terminals_school_id_id_merchant_id_key
    UNIQUE (school_id, id, merchant_id);
ALTER TABLE payments DROP CONSTRAINT payments_terminal_id_fkey,
    DROP CONSTRAINT payments_merchant_id_fkey,
    ADD CONSTRAINT payments_terminal_merchant_fkey FOREIGN KEY (school_id, terminal_id, merchant_id)
        REFERENCES terminals(school_id, id, merchant_id);
ALTER TABLE terminal_nonces DROP CONSTRAINT IF EXISTS terminal_nonces_terminal_id_fkey;
DROP INDEX journal_tx_ref;
CREATE INDEX journal_tx_ref ON journal_tx(ref) WHERE ref IS NOT NULL AND kind <> 'payment';
