CREATE OR REPLACE TRIGGER persons_blacklist AFTER UPDATE OF account_status ON persons
    FOR EACH ROW EXECUTE FUNCTION cc_person_blacklist();
