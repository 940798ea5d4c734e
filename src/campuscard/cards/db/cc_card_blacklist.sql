-- Keep the blacklist in step with card states, whoever changes a card (service, SQL, job):
-- cc_blacklist_sync decides the reason (the card's state first, then its holder's account and
-- offline debt).
CREATE OR REPLACE FUNCTION cc_card_blacklist() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    PERFORM cc_blacklist_sync(NEW.school_id, NEW.id);
    RETURN NEW;
END $$;
