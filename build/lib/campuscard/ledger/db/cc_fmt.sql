-- "12.50" for 1250 fen.
CREATE OR REPLACE FUNCTION cc_fmt(p_fen bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_fen < 0 THEN '-' ELSE '' END
           || (abs(p_fen) / 100)::text || '.' || lpad((abs(p_fen) % 100)::text, 2, '0')
$$;
