CREATE OR REPLACE TRIGGER student_record_backups_append_only BEFORE UPDATE OR DELETE
    ON student_record_backups FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
