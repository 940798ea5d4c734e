-- A card moving between two blocked states (frozen -> lost, expired -> cancelled) kept the
-- reason it entered the device blacklist with, and devices were not told: a till showed
-- "frozen" for a card reported lost (keep the card) and "expired" for a cancelled one. Now
-- every change of a blocked card's reason is a new blacklist version with an 'add' change
-- carrying the new reason (devices upsert added cards), and a permanent entry stays permanent.

-- cc_card_blacklist changed here; its current definition is cards/db/cc_card_blacklist.sql

-- A delta asks, per card, what the device's list held at its version.
CREATE INDEX blacklist_changes_card ON blacklist_changes(card_id, version);
