-- Paying with a code at a till: the till's client id on each use (a retry finds its payment),
-- confirmations on the phone above the PIN threshold, and failed guesses (brute-force brake).

ALTER TABLE paycode_uses ADD COLUMN client_id text;
ALTER TABLE paycode_uses ADD COLUMN credential text;
CREATE UNIQUE INDEX paycode_uses_terminal_client ON paycode_uses(terminal_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE UNIQUE INDEX paycode_uses_credential ON paycode_uses(credential)
    WHERE credential IS NOT NULL;

-- Above the PIN threshold the till may ask the student to confirm on the phone (with the PIN,
-- typed on their own phone instead of the shared keypad). The code is not spent while pending.
CREATE TABLE paycode_confirmations (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    terminal_id     bigint NOT NULL REFERENCES terminals(id),
    client_id       text NOT NULL,
    code            text NOT NULL CHECK (code ~ '^[0-9]{20}$'),
    amount          bigint NOT NULL CHECK (amount > 0),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'refused', 'declined', 'expired')),
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    decided_at      timestamptz,
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    UNIQUE (terminal_id, client_id)
);
CREATE INDEX paycode_confirmations_person ON paycode_confirmations(person_id, id DESC);

-- Codes that did not check out, per token: after a few in a short time the token is refused
-- for a while, so guessing the 6-digit HMAC from a till is not practical.
CREATE TABLE paycode_failures (
    id          bigserial PRIMARY KEY,
    token       text NOT NULL,
    terminal_id bigint REFERENCES terminals(id),
    reason      text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paycode_failures_token ON paycode_failures(token, failed_at DESC);
