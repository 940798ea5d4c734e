-- The payroll account every school has: a payroll line is booked from it (it goes below zero
-- by what the school has paid its staff through the card; the finance office's bank funding
-- books it back). Opened with the school (campuscard.people.directory.open_school_accounts).
CREATE OR REPLACE FUNCTION cc_create_payroll_accounts(p_school int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    VALUES (p_school, 'system', 'payroll_clearing', NULL) ON CONFLICT DO NOTHING;
END $$;
