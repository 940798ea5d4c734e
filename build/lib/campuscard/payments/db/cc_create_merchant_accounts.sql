CREATE OR REPLACE FUNCTION cc_create_merchant_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, merchant_id, shard, floor)
    SELECT NEW.school_id, 'merchant', NEW.id, s, NULL
      FROM generate_series(0, NEW.shards - 1) AS s
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
