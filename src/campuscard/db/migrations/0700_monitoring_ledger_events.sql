-- Monitoring reads money coming in (refunds, top-ups) and offline uploads as events, past a
-- cursor over journal_tx beside the payment cursor (monitoring/events.py, decision 0281).
ALTER TABLE monitoring_cursors DROP CONSTRAINT monitoring_cursors_source_check;
ALTER TABLE monitoring_cursors ADD CONSTRAINT monitoring_cursors_source_check
    CHECK (source IN ('payment', 'refund', 'daily', 'ledger'));

-- Only the bookings the scan reads: a payment's booking is not in this index, so the payment
-- path writes nothing more. The kinds are events.MONEY_IN and events.OFFLINE.
CREATE INDEX journal_tx_monitoring ON journal_tx(school_id, id)
    WHERE kind IN ('refund', 'topup_online', 'bank_load', 'counter_deposit', 'offline_payment');

-- An offline upload's booking names its records by tx_id.
CREATE INDEX offline_records_tx ON offline_records(school_id, tx_id) WHERE tx_id IS NOT NULL;
