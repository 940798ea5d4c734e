-- A student who changes class or leaves changes the grants that reach them.
CREATE OR REPLACE TRIGGER persons_access_touch AFTER UPDATE ON persons
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cc_access_touch_changed('persons');
