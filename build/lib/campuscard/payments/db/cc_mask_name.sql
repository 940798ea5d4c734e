-- "张*" / "欧阳**": a receipt shows the holder without giving the name away.
CREATE OR REPLACE FUNCTION cc_mask_name(p_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(p_name, 1) || repeat('*', greatest(char_length(p_name) - 1, 1))
$$;
