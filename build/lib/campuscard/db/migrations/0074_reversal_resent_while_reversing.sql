-- A reversal (冲正) resent while the first one is still reversing the payment waits for the
-- payment's lock and then answers as the first one did. Before, it went on to reverse again,
-- failed on payment_reversals' key and answered 500 (no money moved twice: the key held).
-- Found by tests/reliability/test_bank.py (a till resending at once after a short timeout).

-- cc_reverse changed here; its current definition is payments/db/cc_reverse.sql
