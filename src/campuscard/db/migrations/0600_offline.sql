-- Offline POS, store and forward. A till that lost the network keeps approving within the risk
-- limits it got with the blacklist, signs each record with its key and its own sequence number,
-- and uploads batches when it is back. Records are kept exactly once by (device, sequence); each
-- card's chain (counter + 1, offline total before + amount = after) is checked in counter order,
-- a record waits for a missing counter, and a debit the purses cannot cover is booked to the
-- school's offline-overdraft receivable, which the holder's next top-up repays first.
-- docs/decisions/0220-offline-records-settled-per-card-chain.md

ALTER TABLE cards ADD CONSTRAINT cards_school_id UNIQUE (school_id, id);

-- One upload (a batch) from a device, with what it brought.
CREATE TABLE offline_uploads (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    terminal_id     bigint NOT NULL,
    business_date   date NOT NULL,
    received        int NOT NULL CHECK (received >= 0),
    accepted        int NOT NULL CHECK (accepted >= 0),
    duplicates      int NOT NULL CHECK (duplicates >= 0),
    rejected        int NOT NULL CHECK (rejected >= 0),
    settled         int NOT NULL CHECK (settled >= 0),   -- this upload's and earlier waiting ones
    waiting         int NOT NULL CHECK (waiting >= 0),   -- of this upload, for a missing counter
    chain_breaks    int NOT NULL CHECK (chain_breaks >= 0),
    overdrafts      int NOT NULL CHECK (overdrafts >= 0),
    overdraft_fen   bigint NOT NULL CHECK (overdraft_fen >= 0),
    missing         int NOT NULL CHECK (missing >= 0),   -- the device's sequence numbers not seen
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);
CREATE INDEX offline_uploads_day ON offline_uploads(school_id, business_date, terminal_id);

-- Every record a device made offline, once. state: waiting (for a missing card counter),
-- settled (booked), refused (never booked: unknown card, lost before the sale, bad arithmetic
-- is NOT refused but booked with a chain break).
CREATE TABLE offline_records (
    school_id       int NOT NULL REFERENCES schools(id),
    terminal_id     bigint NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    upload_id       bigint NOT NULL,
    signature       text NOT NULL,
    card_number     text NOT NULL,
    card_uid        text NOT NULL,
    card_id         bigint,
    person_id       bigint,
    amount          bigint NOT NULL CHECK (amount > 0),
    made_at         timestamptz NOT NULL,           -- the device clock when the sale was made
    card_counter    bigint NOT NULL CHECK (card_counter > 0),
    total_before    bigint NOT NULL CHECK (total_before >= 0),
    total_after     bigint NOT NULL CHECK (total_after >= 0),
    state           text NOT NULL CHECK (state IN ('waiting', 'settled', 'refused')),
    refusal         text,
    chain_break     text,                           -- what was wrong with the card's chain
    from_cash       bigint NOT NULL DEFAULT 0 CHECK (from_cash >= 0),
    from_subsidy    bigint NOT NULL DEFAULT 0 CHECK (from_subsidy >= 0),
    overdraft       bigint NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
    tx_id           bigint,
    business_date   date,                           -- the day it was booked
    received_at     timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz,
    PRIMARY KEY (school_id, terminal_id, seq),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id),
    FOREIGN KEY (school_id, upload_id) REFERENCES offline_uploads(school_id, id),
    FOREIGN KEY (school_id, card_id) REFERENCES cards(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((state = 'refused') = (refusal IS NOT NULL)),
    CHECK (state <> 'settled' OR (tx_id IS NOT NULL AND settled_at IS NOT NULL
                                  AND from_cash + from_subsidy + overdraft = amount))
);
CREATE INDEX offline_records_waiting ON offline_records(school_id, card_id, card_counter)
    WHERE state = 'waiting';
CREATE INDEX offline_records_card ON offline_records(school_id, card_id, card_counter);
CREATE INDEX offline_records_day ON offline_records(school_id, business_date);

-- The head of each card's offline chain: the last counter settled and the card's offline total
-- after it (the total restarts at 0 when the card is next used online).
CREATE TABLE offline_card_chains (
    school_id       int NOT NULL REFERENCES schools(id),
    card_id         bigint NOT NULL,
    last_counter    bigint NOT NULL,
    last_total      bigint NOT NULL,
    last_made_at    timestamptz,                    -- none before the first record
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, card_id),
    FOREIGN KEY (school_id, card_id) REFERENCES cards(school_id, id)
);

-- Per device: every sequence number up to contiguous_seq has arrived; max_seq is the highest seen.
-- The numbers between them that are missing are the device's gaps (asked for again).
CREATE TABLE offline_devices (
    school_id       int NOT NULL REFERENCES schools(id),
    terminal_id     bigint NOT NULL,
    contiguous_seq  bigint NOT NULL DEFAULT 0 CHECK (contiguous_seq >= 0),
    max_seq         bigint NOT NULL DEFAULT 0 CHECK (max_seq >= contiguous_seq),
    records         bigint NOT NULL DEFAULT 0 CHECK (records >= 0),
    last_upload_at  timestamptz,
    PRIMARY KEY (school_id, terminal_id),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);

-- What a holder owes for offline sales their purses could not cover. The money itself is on the
-- school's offline_receivable account; this row says who owes it.
CREATE TABLE offline_debts (
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    owed            bigint NOT NULL CHECK (owed >= 0),
    overdrawn_total bigint NOT NULL DEFAULT 0 CHECK (overdrawn_total >= 0),
    repaid_total    bigint NOT NULL DEFAULT 0 CHECK (repaid_total >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (owed = overdrawn_total - repaid_total)
);

-- The receivable every school has (new schools: offline/db/cc_create_offline_accounts.sql).
INSERT INTO accounts(school_id, kind, system_code, floor)
SELECT id, 'system', 'offline_receivable', NULL FROM schools s
 WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.school_id = s.id AND a.kind = 'system'
                     AND a.system_code = 'offline_receivable');

-- function cc_blacklist_sync: cards/db/cc_blacklist_sync.sql (the card's state, its holder's
--   account, an offline debt above the school's limit: one reason, one list)
-- function cc_person_blacklist, trigger persons_blacklist: cards/db/
-- function cc_debt_blacklist, trigger offline_debts_blacklist: offline/db/
-- function cc_offline_repay: offline/db/cc_offline_repay.sql

-- Cards whose holder's account is already frozen or closed go on the list now (a student who
-- left keeps an active card: refused online, and from this version refused offline too).
DO $$
DECLARE
    r record;
    v_version bigint;
BEGIN
    FOR r IN SELECT c.id, c.school_id, c.number, c.uid, 'account_' || p.account_status AS reason
               FROM cards c JOIN persons p ON p.id = c.person_id
              WHERE c.state IN ('issued', 'active') AND p.account_status IN ('frozen', 'closed')
                AND NOT EXISTS (SELECT 1 FROM blacklist_entries e WHERE e.card_id = c.id)
              ORDER BY c.school_id, c.id
    LOOP
        INSERT INTO blacklist_heads(school_id, version) VALUES (r.school_id, 1)
        ON CONFLICT (school_id) DO UPDATE SET version = blacklist_heads.version + 1
        RETURNING version INTO v_version;
        INSERT INTO blacklist_entries(card_id, school_id, number, uid, reason, permanent, version)
        VALUES (r.id, r.school_id, r.number, r.uid, r.reason, false, v_version);
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (r.school_id, v_version, r.id, r.number, r.uid, 'add', r.reason);
    END LOOP;
END $$;
