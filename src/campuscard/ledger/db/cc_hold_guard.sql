-- A hold resolves exactly once: only a pending hold changes, and then only its state (with
-- what the resolution records) or its expiry; what was held, where and for whom never changes.
-- Holds are never deleted.
CREATE OR REPLACE FUNCTION cc_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'holds are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state <> 'pending' THEN
        RAISE EXCEPTION 'hold % was already %', OLD.id, OLD.state USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.school_id, NEW.id, NEW.hold_key, NEW.request_hash, NEW.kind, NEW.owner_kind,
        NEW.owner_id, NEW.person_id, NEW.account_id, NEW.payee_account_id, NEW.amount,
        NEW.placed_by, NEW.placed_at)
       IS DISTINCT FROM
       (OLD.school_id, OLD.id, OLD.hold_key, OLD.request_hash, OLD.kind, OLD.owner_kind,
        OLD.owner_id, OLD.person_id, OLD.account_id, OLD.payee_account_id, OLD.amount,
        OLD.placed_by, OLD.placed_at) THEN
        RAISE EXCEPTION 'a hold keeps what it holds' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
