-- A period is changed by ending it and adding a new one (past sheets keep the one they were read
-- with), so a class's period names are unique among its active periods only: ending 早读 and
-- adding a new 早读 at another time was refused as a taken name.
ALTER TABLE attendance_rules DROP CONSTRAINT attendance_rules_school_id_class_id_name_key;
CREATE UNIQUE INDEX attendance_rules_active_name ON attendance_rules(school_id, class_id, name)
    WHERE active;
