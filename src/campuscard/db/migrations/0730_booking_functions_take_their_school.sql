-- The payment, reversal and refund functions and the blacklist sync take their school as their
-- first argument (so Citus can delegate a call to the worker holding the school, and every
-- statement in them names it): their new definitions are database code files, applied after
-- this migration; the old signatures go, so no caller reaches a copy that ignores the school.
DROP FUNCTION IF EXISTS cc_pay(text, bigint, int, text, text, text, text, text, bigint, text, bigint, text);
DROP FUNCTION IF EXISTS cc_pay_batch(jsonb);
DROP FUNCTION IF EXISTS cc_reverse(bigint, int, text, text, text);
DROP FUNCTION IF EXISTS cc_refund(bigint, bigint, bigint, text, text);
DROP FUNCTION IF EXISTS cc_blacklist_sync(bigint);
