-- The offline-overdraft receivable every school has: offline sales the purses could not cover
-- are booked from it (it goes below zero: the holders owe it), top-ups repay it. Opened with
-- the school (campuscard.people.directory.open_school_accounts).
CREATE OR REPLACE FUNCTION cc_create_offline_accounts(p_school int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    VALUES (p_school, 'system', 'offline_receivable', NULL) ON CONFLICT DO NOTHING;
END $$;
