-- Offline records, card chains and postings are written a row per sale, and each named its
-- school twice: a foreign key to schools, checked (and its school row key-share locked) for
-- every row, and a key paired with school_id to a parent of the same school (the terminal, the
-- card, the journal transaction), whose own foreign key to schools already proves the school.
-- The first is dropped; the paired keys stay and still refuse a row of a school that is not
-- there. docs/decisions/0360-set-based-post-many.md
ALTER TABLE offline_records DROP CONSTRAINT IF EXISTS offline_records_school_id_fkey;
ALTER TABLE offline_card_chains DROP CONSTRAINT IF EXISTS offline_card_chains_school_id_fkey;
ALTER TABLE postings DROP CONSTRAINT IF EXISTS postings_school_id_fkey;
