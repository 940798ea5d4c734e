-- A payment wrote its payer's day total in a row of its own (daily_spend: a read and an upsert
-- per booking) beside the cash purse it moves anyway. The day's total now lives on the cash
-- purse row, written by the same update that moves the purse: spent_on is the business date of
-- the total, spent the fen paid that day (a total of another day counts as nothing).
-- docs/decisions/0380-a-payment-writes-each-row-once.md
ALTER TABLE accounts ADD COLUMN spent_on date, ADD COLUMN spent bigint NOT NULL DEFAULT 0;
UPDATE accounts a SET spent_on = d.business_date, spent = d.spent
  FROM (SELECT DISTINCT ON (school_id, person_id) school_id, person_id, business_date, spent
          FROM daily_spend ORDER BY school_id, person_id, business_date DESC) d
 WHERE a.school_id = d.school_id AND a.person_id = d.person_id AND a.kind = 'purse'
   AND a.purse = 'cash';
DROP TABLE daily_spend;

-- Rows written per payment named their school twice, as the offline tables did (migration
-- 0760): a foreign key to schools, checked (and the school's one row key-share locked by every
-- payment in flight) for every row, and a key paired with school_id to a parent of the same
-- school (the terminal, the person), whose own foreign key to schools proves the school.
ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_school_id_fkey;
ALTER TABLE terminal_nonces DROP CONSTRAINT IF EXISTS terminal_nonces_school_id_fkey;
ALTER TABLE paycode_uses DROP CONSTRAINT IF EXISTS paycode_uses_school_id_fkey;
