-- Getting a card (seed 004, seed 000): student-record imports with their stored file versions,
-- card applications and their approval queue, pickup codes published to the school's kiosks,
-- per-kiosk guessing limits, and backups of a student's record taken before each card change.

-- Every accepted import file, kept byte for byte (seed 004 step 1: the platform backs up what
-- it received); a school's versions count 1, 2, 3 ...
CREATE TABLE student_import_files (
    id                  bigserial PRIMARY KEY,
    school_id           int NOT NULL REFERENCES schools(id),
    version             int NOT NULL,
    filename            text NOT NULL,
    sha256              text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes          int NOT NULL,
    content             bytea NOT NULL,
    row_count           int NOT NULL,
    added               int NOT NULL,
    updated             int NOT NULL,
    unchanged           int NOT NULL,
    canonical_sha256    text NOT NULL,
    imported_by         bigint REFERENCES users(id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, version),
    UNIQUE (school_id, id)
);
CREATE INDEX student_import_files_sha ON student_import_files(school_id, sha256);

-- The enrollment record an import maintains for a student, next to the person row: the IC
-- card number the school holds for the student and who imported it (the teacher told about
-- card changes).
CREATE TABLE student_records (
    person_id       bigint PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    ic_card_no      text CHECK (ic_card_no ~ '^[0-9]{6,20}$'),
    import_file_id  bigint REFERENCES student_import_files(id),
    imported_by     bigint REFERENCES users(id),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE UNIQUE INDEX student_records_card ON student_records(school_id, ic_card_no)
    WHERE ic_card_no IS NOT NULL;

-- Seed 004 step 6: the student's record as it was before a card was bound; never changed.
CREATE TABLE student_record_backups (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    person_id   bigint NOT NULL REFERENCES persons(id),
    reason      text NOT NULL,
    record      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX student_record_backups_person ON student_record_backups(person_id, id);
-- trigger student_record_backups_append_only: issuing/db/student_record_backups_append_only.sql

-- Card applications. delivery 'kiosk' = self-service pickup with a code (seed 004);
-- 'counter' = produced by the card center and handed out (seed 000).
CREATE TABLE card_applications (
    id                  bigserial PRIMARY KEY,
    school_id           int NOT NULL REFERENCES schools(id),
    person_id           bigint NOT NULL,
    applicant_user_id   bigint REFERENCES users(id),
    applicant_kind      text NOT NULL CHECK (applicant_kind IN ('guardian', 'student', 'operator')),
    applicant_phone     text CHECK (applicant_phone ~ '^\+?[0-9]{5,20}$'),
    delivery            text NOT NULL CHECK (delivery IN ('kiosk', 'counter')),
    status              text NOT NULL CHECK (status IN (
                            'pending_approval', 'rejected', 'awaiting_payment', 'ready',
                            'in_production', 'produced', 'issued', 'cancelled')),
    review_reason       text NOT NULL DEFAULT '',
    fee                 bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
    fee_status          text NOT NULL CHECK (fee_status IN ('waived', 'due', 'paid')),
    fee_ref             text,
    business_date       date NOT NULL,
    day_seq             int NOT NULL CHECK (day_seq > 0),
    decided_by          bigint REFERENCES users(id),
    decided_at          timestamptz,
    decision_note       text NOT NULL DEFAULT '',
    card_id             bigint REFERENCES cards(id),
    card_number         text,
    produced_at         timestamptz,
    issued_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, business_date, day_seq),
    UNIQUE (school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
-- one open application per student at a time
CREATE UNIQUE INDEX card_applications_open ON card_applications(person_id)
    WHERE status NOT IN ('rejected', 'issued', 'cancelled');
CREATE INDEX card_applications_queue ON card_applications(school_id, status, id);

-- The day's application sequence per school (seed 004 step 4: 当日申请排序).
CREATE TABLE application_day_counters (
    school_id       int NOT NULL REFERENCES schools(id),
    business_date   date NOT NULL,
    last_seq        int NOT NULL,
    PRIMARY KEY (school_id, business_date)
);

-- Pickup codes: only a keyed hash is stored. Every change takes a new version from one
-- sequence, so a kiosk asking "what changed since version V" sees each change exactly once.
CREATE SEQUENCE pickup_feed_version;

CREATE TABLE pickup_codes (
    id                  bigserial PRIMARY KEY,
    school_id           int NOT NULL REFERENCES schools(id),
    application_id      bigint NOT NULL,
    person_id           bigint NOT NULL REFERENCES persons(id),
    code_hash           bytea NOT NULL UNIQUE,
    state               text NOT NULL DEFAULT 'ready'
                        CHECK (state IN ('ready', 'authorized', 'issued', 'expired', 'revoked')),
    expires_at          timestamptz NOT NULL,
    terminal_id         bigint REFERENCES terminals(id),
    authorized_at       timestamptz,
    dispense_failures   int NOT NULL DEFAULT 0,
    last_failure        text,
    issued_at           timestamptz,
    card_number         text,
    version             bigint NOT NULL DEFAULT nextval('pickup_feed_version'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (school_id, application_id) REFERENCES card_applications(school_id, id),
    CHECK ((state = 'authorized') <= (terminal_id IS NOT NULL))
);
CREATE UNIQUE INDEX pickup_codes_live ON pickup_codes(application_id)
    WHERE state IN ('ready', 'authorized');
CREATE INDEX pickup_codes_feed ON pickup_codes(school_id, version);
CREATE INDEX pickup_codes_expiry ON pickup_codes(expires_at) WHERE state = 'ready';

-- function cc_pickup_bump_version: issuing/db/cc_pickup_bump_version.sql
-- trigger pickup_codes_version: issuing/db/pickup_codes_version.sql

-- What each kiosk holds to check a code locally: HMAC of the code under that kiosk's own key
-- (kiosks never hold the master key, and one kiosk's table is useless on another).
CREATE TABLE pickup_kiosk_hashes (
    pickup_id   bigint NOT NULL REFERENCES pickup_codes(id),
    terminal_id bigint NOT NULL REFERENCES terminals(id),
    kiosk_hash  text NOT NULL,
    PRIMARY KEY (pickup_id, terminal_id)
);
CREATE INDEX pickup_kiosk_hashes_terminal ON pickup_kiosk_hashes(terminal_id);

-- Guessing limit per kiosk: wrong codes in the current window; locked until a time.
CREATE TABLE kiosk_code_guesses (
    terminal_id     bigint PRIMARY KEY REFERENCES terminals(id),
    window_start    timestamptz NOT NULL,
    failures        int NOT NULL,
    locked_until    timestamptz
);
