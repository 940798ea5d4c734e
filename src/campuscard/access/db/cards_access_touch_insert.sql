-- A card issued changes what door readers accept.
CREATE OR REPLACE TRIGGER cards_access_touch_insert AFTER INSERT ON cards
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cc_access_touch_new();
