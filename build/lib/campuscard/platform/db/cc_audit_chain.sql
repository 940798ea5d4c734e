CREATE OR REPLACE FUNCTION cc_audit_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_prev text;
BEGIN
    -- serialise writers on the chain head so every row links to exactly one predecessor
    PERFORM pg_advisory_xact_lock(7220);
    SELECT hash INTO v_prev FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.prev_hash := coalesce(v_prev, '');
    NEW.hash := encode(sha256(convert_to(
        NEW.prev_hash || '|' || NEW.id || '|' || coalesce(NEW.school_id::text, '') || '|' ||
        coalesce(NEW.actor_user_id::text, '') || '|' || NEW.actor || '|' || NEW.action || '|' ||
        NEW.target_type || '|' || NEW.target_id || '|' || coalesce(NEW.before::text, '') || '|' ||
        coalesce(NEW.after::text, '') || '|' || NEW.created_at::text, 'UTF8')), 'hex');
    RETURN NEW;
END $$;
