CREATE OR REPLACE FUNCTION cc_pickup_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('pickup_feed_version');
    RETURN NEW;
END $$;
