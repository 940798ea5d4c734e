-- Card life (states, events, the device blacklist), payment settings of a cardholder (PIN,
-- own limits), merchant staff permissions, and terminal keys, nonces and heartbeats.

-- Cards ----------------------------------------------------------------------------------
ALTER TABLE cards
    ADD COLUMN replaced_by      bigint REFERENCES cards(id),
    ADD COLUMN state_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN activated_at     timestamptz,
    ADD COLUMN closed_at        timestamptz;

-- A person holds at most one card that is still theirs (issued, active, lost or frozen).
CREATE UNIQUE INDEX cards_one_live_per_person ON cards(person_id)
    WHERE state IN ('issued', 'active', 'lost', 'frozen');

-- Every transition, in order: who, why, from which state to which.
CREATE TABLE card_events (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    card_id     bigint NOT NULL REFERENCES cards(id),
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL,
    channel     text NOT NULL DEFAULT 'counter',   -- counter, online, kiosk, system
    reason      text NOT NULL DEFAULT '',
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_events_card ON card_events(card_id, id);
CREATE TRIGGER card_events_append_only BEFORE UPDATE OR DELETE ON card_events
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();

-- The device blacklist: the current entries and a versioned change log per school. Devices
-- ask for the changes since the version they hold. Entries for replaced, cancelled and
-- expired cards are permanent; lost and frozen cards leave the list when unblocked.
CREATE TABLE blacklist_heads (
    school_id   int PRIMARY KEY REFERENCES schools(id),
    version     bigint NOT NULL DEFAULT 0
);

CREATE TABLE blacklist_entries (
    card_id     bigint PRIMARY KEY REFERENCES cards(id),
    school_id   int NOT NULL REFERENCES schools(id),
    number      text NOT NULL,
    uid         text,
    reason      text NOT NULL,
    permanent   boolean NOT NULL DEFAULT false,
    version     bigint NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blacklist_entries_school ON blacklist_entries(school_id, version);

CREATE TABLE blacklist_changes (
    school_id   int NOT NULL REFERENCES schools(id),
    version     bigint NOT NULL,
    card_id     bigint NOT NULL REFERENCES cards(id),
    number      text NOT NULL,
    uid         text,
    op          text NOT NULL CHECK (op IN ('add', 'remove')),
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, version)
);

-- Keep the blacklist in step with card states, whoever changes a card (service, SQL, job).
CREATE FUNCTION cc_card_blacklist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_blocked boolean := NEW.state IN ('lost', 'frozen', 'replaced', 'cancelled', 'expired');
    v_permanent boolean := NEW.state IN ('replaced', 'cancelled', 'expired');
    v_entry blacklist_entries%ROWTYPE;
    v_version bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    SELECT * INTO v_entry FROM blacklist_entries WHERE card_id = NEW.id;
    IF v_blocked AND (v_entry.card_id IS NULL OR (v_permanent AND NOT v_entry.permanent)) THEN
        INSERT INTO blacklist_heads(school_id, version) VALUES (NEW.school_id, 1)
        ON CONFLICT (school_id) DO UPDATE SET version = blacklist_heads.version + 1
        RETURNING version INTO v_version;
        INSERT INTO blacklist_entries(card_id, school_id, number, uid, reason, permanent, version)
        VALUES (NEW.id, NEW.school_id, NEW.number, NEW.uid, NEW.state, v_permanent, v_version)
        ON CONFLICT (card_id) DO UPDATE SET reason = EXCLUDED.reason,
            permanent = EXCLUDED.permanent, version = EXCLUDED.version;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (NEW.school_id, v_version, NEW.id, NEW.number, NEW.uid, 'add', NEW.state);
    ELSIF NOT v_blocked AND v_entry.card_id IS NOT NULL AND NOT v_entry.permanent THEN
        UPDATE blacklist_heads SET version = version + 1 WHERE school_id = NEW.school_id
        RETURNING version INTO v_version;
        DELETE FROM blacklist_entries WHERE card_id = NEW.id;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (NEW.school_id, v_version, NEW.id, NEW.number, NEW.uid, 'remove', NEW.state);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cards_blacklist AFTER INSERT OR UPDATE OF state ON cards
    FOR EACH ROW EXECUTE FUNCTION cc_card_blacklist();

-- Cardholder payment settings: PIN (peppered hash, see docs/decisions/0011), failures, and
-- the limits the holder or an operator set below/over the school's defaults.
CREATE TABLE pay_settings (
    person_id       bigint PRIMARY KEY REFERENCES persons(id),
    school_id       int NOT NULL REFERENCES schools(id),
    pin_hash        text,
    pin_failures    int NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    pin_set_at      timestamptz,
    per_tx_limit    bigint CHECK (per_tx_limit > 0),
    daily_limit     bigint CHECK (daily_limit > 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Merchants ------------------------------------------------------------------------------
ALTER TABLE merchants
    ADD COLUMN applied_by   bigint REFERENCES users(id),
    ADD COLUMN decided_by   bigint REFERENCES users(id),
    ADD COLUMN decision_note text NOT NULL DEFAULT '';

-- Fine-grained permissions of merchant staff (a manager has them all).
CREATE TABLE merchant_permissions (
    user_id     bigint NOT NULL REFERENCES users(id),
    merchant_id bigint NOT NULL REFERENCES merchants(id),
    permission  text NOT NULL CHECK (permission IN ('refund')),
    PRIMARY KEY (user_id, merchant_id, permission)
);

-- Terminals ------------------------------------------------------------------------------
-- Keys are derived from the master key, the SN and key_version (never stored). After a
-- rotation the previous version keeps working until the device first signs with the new one,
-- so a lost rotation answer cannot lock a device out.
ALTER TABLE terminals
    ADD COLUMN prev_key_version int,
    ADD COLUMN key_rotated_at   timestamptz,
    ADD COLUMN heartbeat        jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN blacklist_version bigint;

CREATE TABLE terminal_nonces (
    terminal_id bigint NOT NULL REFERENCES terminals(id),
    nonce       text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (terminal_id, nonce)
);
CREATE INDEX terminal_nonces_seen ON terminal_nonces(seen_at);
