CREATE OR REPLACE TRIGGER card_events_append_only BEFORE UPDATE OR DELETE ON card_events
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
