-- Holds: money set aside on a purse but not yet moved (a shower running, a laundry cycle, an
-- escrowed order, a bill in payment). Two-phase: a hold is placed pending, then captured (in
-- part or whole; the rest released), voided or expired, exactly once.
--  * accounts.held is the sum of the account's pending holds, kept by the holds trigger only
--    (ledger/db/cc_hold_apply.sql); the floor CHECK is on balance - held, so no payment,
--    withdrawal or booking of any kind can spend held money;
--  * a resolved hold never changes again (ledger/db/cc_hold_guard.sql).
-- docs/decisions/0140-holds-as-a-held-column.md

ALTER TABLE accounts ADD COLUMN held bigint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD CONSTRAINT accounts_held_not_negative CHECK (held >= 0);
ALTER TABLE accounts DROP CONSTRAINT accounts_floor;
ALTER TABLE accounts ADD CONSTRAINT accounts_floor CHECK (floor IS NULL OR balance - held >= floor);
-- holds name their accounts together with the school (scale-out: no key without school_id)
ALTER TABLE accounts ADD CONSTRAINT accounts_school_id UNIQUE (school_id, id);

CREATE TABLE holds (
    school_id        int NOT NULL REFERENCES schools(id),
    id               bigint GENERATED ALWAYS AS IDENTITY,
    hold_key         text NOT NULL CHECK (hold_key ~ '^[A-Za-z0-9_.:-]{8,64}$'),  -- the client's id
    request_hash     text NOT NULL,
    kind             text NOT NULL CHECK (kind ~ '^[a-z_]{2,24}$'),
    owner_kind       text NOT NULL CHECK (owner_kind ~ '^[a-z_]{2,24}$'),  -- device_session, order …
    owner_id         text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 64),
    person_id        bigint NOT NULL,
    account_id       bigint NOT NULL,          -- the purse the money is held on
    payee_account_id bigint NOT NULL,          -- where a capture books it (merchant shard, system)
    amount           bigint NOT NULL CHECK (amount > 0),
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'captured', 'voided', 'expired')),
    captured         bigint NOT NULL DEFAULT 0 CHECK (captured >= 0 AND captured <= amount),
    tx_id            bigint,                   -- the capture's journal transaction
    memo             text NOT NULL DEFAULT '',
    placed_by        text NOT NULL,
    placed_at        timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    resolved_at      timestamptz,
    resolved_by      text,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, hold_key),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, account_id) REFERENCES accounts(school_id, id),
    FOREIGN KEY (school_id, payee_account_id) REFERENCES accounts(school_id, id),
    CHECK ((state = 'pending') = (resolved_at IS NULL)),
    CHECK (state = 'captured' OR (captured = 0 AND tx_id IS NULL)),
    CHECK (state <> 'captured' OR (captured > 0 AND tx_id IS NOT NULL))
);
CREATE INDEX holds_due ON holds(school_id, expires_at) WHERE state = 'pending';
CREATE INDEX holds_open_account ON holds(account_id) WHERE state = 'pending';
CREATE INDEX holds_owner ON holds(school_id, owner_kind, owner_id);
CREATE INDEX holds_person ON holds(school_id, person_id, placed_at);

-- function cc_hold_apply: ledger/db/cc_hold_apply.sql      trigger holds_apply: ledger/db/holds_apply.sql
-- function cc_hold_guard: ledger/db/cc_hold_guard.sql      trigger holds_guard: ledger/db/holds_guard.sql
-- functions cc_hold_timeout, cc_hold_view, cc_hold_place, cc_hold_capture, cc_hold_void,
-- cc_hold_expire: ledger/db/
