-- Three more system accounts per school: the school's own bank account and its balance at the
-- payment provider (where reconciled money lands), and reconciliation write-offs (差错损益).
-- Opened with the school (campuscard.people.directory.open_school_accounts).
CREATE OR REPLACE FUNCTION cc_create_settlement_accounts(p_school int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    SELECT p_school, 'system', c, NULL
      FROM unnest(ARRAY['bank_account', 'provider_account', 'recon_writeoff']) AS c
    ON CONFLICT DO NOTHING;
END $$;
