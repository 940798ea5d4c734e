-- The offline-overdraft receivable every school has: offline sales the purses could not cover
-- are booked from it (it goes below zero: the holders owe it), top-ups repay it.
CREATE OR REPLACE FUNCTION cc_create_offline_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    VALUES (NEW.id, 'system', 'offline_receivable', NULL) ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
