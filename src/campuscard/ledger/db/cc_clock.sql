-- The instant the money engine books at: now(), unless the transaction set campuscard.book_at
-- to an earlier instant. Only the demo campus does, to book its past month through the real
-- engine (docs/decisions/0250-demo-history-through-the-engine.md). A later instant is refused:
-- nothing is ever booked in the future.
CREATE OR REPLACE FUNCTION cc_clock() RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_at timestamptz := nullif(current_setting('campuscard.book_at', true), '')::timestamptz;
BEGIN
    IF v_at IS NULL THEN
        RETURN now();
    END IF;
    IF v_at > now() THEN
        RAISE EXCEPTION 'campuscard.book_at % is in the future', v_at
              USING ERRCODE = 'check_violation';
    END IF;
    RETURN v_at;
END $$;
