-- An offline upload books one journal transaction per merchant shard it credits, carrying the
-- sales of many tills; clearing counts each till's part of that posting from the offline
-- records that name the transaction. An item is a posting on a merchant account, or one till's
-- part of an offline posting: part is that till's id, 0 for every other posting.
-- docs/decisions/0390-offline-bookings-per-merchant-cleared-per-till-from-the-records.md
ALTER TABLE clearing_items ADD COLUMN part bigint NOT NULL DEFAULT 0;
ALTER TABLE clearing_items DROP CONSTRAINT clearing_items_pkey,
    ADD CONSTRAINT clearing_items_pkey PRIMARY KEY (school_id, posting_id, part);
