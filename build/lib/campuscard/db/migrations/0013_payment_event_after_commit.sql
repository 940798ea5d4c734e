-- The payment's live event leaves cc_pay as data instead of a NOTIFY inside the booking
-- transaction. PostgreSQL serialises every committing transaction that has NOTIFYs on one
-- global lock held through its commit flush, which capped bookings at about 150/s with fsync
-- on (bench/payments.py). services/payments.py sends the event after commit, many per NOTIFY
-- transaction (services/event_batch.py), or inside the caller's transaction when it has one.
-- docs/decisions/0013-live-events-after-commit.md

-- cc_pay_inner changed here; its current definition is payments/db/cc_pay_inner.sql
