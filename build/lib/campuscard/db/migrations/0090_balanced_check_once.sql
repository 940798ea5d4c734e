-- The commit-time ledger check (postings_balanced, a deferred trigger per posting row) read all
-- postings of the journal transaction once for every one of its postings: a payment with three
-- legs summed its legs three times. Now the first firing checks the whole transaction and
-- remembers, for this database transaction only, the journal transaction and the highest
-- posting id it covered; a later firing for a posting it covered returns at once. A posting
-- added afterwards (higher id: the id sequence only grows) is checked again with all its
-- siblings, so nothing inserted after a check escapes it (e.g. after SET CONSTRAINTS
-- IMMEDIATE). docs/decisions/0090-lean-payment-path.md

-- cc_check_tx_balanced changed here; its current definition is ledger/db/cc_check_tx_balanced.sql
