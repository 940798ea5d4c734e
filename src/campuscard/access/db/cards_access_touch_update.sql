-- A card lost, found, replaced or expired changes what door readers accept.
CREATE OR REPLACE TRIGGER cards_access_touch_update AFTER UPDATE ON cards
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cc_access_touch_changed('cards');
