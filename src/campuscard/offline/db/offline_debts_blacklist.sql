CREATE OR REPLACE TRIGGER offline_debts_blacklist AFTER INSERT OR UPDATE OF owed ON offline_debts
    FOR EACH ROW EXECUTE FUNCTION cc_debt_blacklist();
