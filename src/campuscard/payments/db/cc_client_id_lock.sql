-- The advisory transaction lock of one (terminal, client id): a payment and a reversal under
-- the same client id take it before they read or write the idempotency key, so the key is
-- written once, with its answer, and a resend waits for the first try instead of racing it.
CREATE OR REPLACE FUNCTION cc_client_id_lock(p_terminal bigint, p_client_id text)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('terminal:' || p_terminal || ':' || p_client_id, 0x0CA9)
$$;
