-- A code's use (paycode_uses, written once per code payment) checked four keys and entered six
-- indexes. Its person is its code's: one key on (school, device, person) to the phone's binding,
-- or on (school, minted code, person) to the minted code, proves the code and that the use's payer
-- is the code's owner (the binding's or the minted code's own key proves the person), where a key
-- to the code and another to the person proved each alone. The use's till is not checked: the till
-- is read in the same call, and tills are never deleted (as a nonce's, migration 0791). Nothing
-- reads uses by person (paycode_uses_person), and a phone's code has no minted code, so the minted
-- code's uniqueness is kept for the uses that have one (a partial unique index; NULLs never
-- conflicted, so the rule is the same).
-- docs/decisions/0410-a-codes-use-checks-its-code-once.md
ALTER TABLE paycode_devices ADD CONSTRAINT paycode_devices_school_id_id_person_id_key
    UNIQUE (school_id, id, person_id);
ALTER TABLE paycode_minted ADD CONSTRAINT paycode_minted_school_id_id_person_id_key
    UNIQUE (school_id, id, person_id);
ALTER TABLE paycode_uses
    DROP CONSTRAINT paycode_uses_device_id_fkey,
    DROP CONSTRAINT paycode_uses_minted_id_fkey,
    DROP CONSTRAINT paycode_uses_school_id_person_id_fkey,
    DROP CONSTRAINT IF EXISTS paycode_uses_terminal_id_fkey,
    ADD CONSTRAINT paycode_uses_device_person_fkey FOREIGN KEY (school_id, device_id, person_id)
        REFERENCES paycode_devices(school_id, id, person_id),
    ADD CONSTRAINT paycode_uses_minted_person_fkey FOREIGN KEY (school_id, minted_id, person_id)
        REFERENCES paycode_minted(school_id, id, person_id);
ALTER TABLE paycode_uses DROP CONSTRAINT paycode_uses_minted_id_key;
CREATE UNIQUE INDEX paycode_uses_minted_id_key ON paycode_uses(school_id, minted_id)
    WHERE minted_id IS NOT NULL;
DROP INDEX paycode_uses_person;
