-- Offline records are written once or twice each (stored, then settled when a missing card
-- counter arrives) at the rate of a campus's offline uploads, and every index is written with
-- them. Two were read by nothing: the ingest finds a card's waiting records through
-- offline_records_waiting, the console reads a day's records through their uploads, and
-- monitoring through tx_id. docs/decisions/0330-offline-upload-in-two-short-transactions.md
DROP INDEX IF EXISTS offline_records_card;
DROP INDEX IF EXISTS offline_records_day;
