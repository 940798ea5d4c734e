CREATE OR REPLACE FUNCTION cc_check_timezone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.timezone;  -- raises for an unknown zone
    RETURN NEW;
END $$;
