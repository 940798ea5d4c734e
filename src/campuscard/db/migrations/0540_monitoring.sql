-- Watching over students (monitoring/): rules a school switches on, the alerts they raise with
-- their reason in words, who hears about them (the student; parents who opted in and, for an
-- adult student, were given consent), the counsellors who see risk tiers, and the quiet help
-- for hidden hardship. Every table is distributed by school: school_id leads every key.

-- Counsellors (辅导员) see the risk tier of the students of their classes.
ALTER TABLE user_roles DROP CONSTRAINT user_roles_role_check;
ALTER TABLE user_roles ADD CONSTRAINT user_roles_role_check CHECK (role IN (
    'platform_admin', 'school_admin', 'card_center', 'settlement',
    'teacher', 'merchant_staff', 'merchant_manager', 'cardholder', 'guardian', 'counsellor'));

-- A rule as the school set it: absent or disabled means the rule does not run.
CREATE TABLE monitoring_rules (
    school_id   int NOT NULL REFERENCES schools(id),
    rule        text NOT NULL CHECK (rule ~ '^[a-z_]{2,32}$'),
    enabled     boolean NOT NULL DEFAULT false,
    thresholds  jsonb NOT NULL DEFAULT '{}'::jsonb,      -- over the defaults in monitoring/rules.py
    updated_by  text NOT NULL DEFAULT 'system',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, rule)
);

-- Where an outlet stands on campus (metres on the school's own grid), for the rule on two
-- payments too far apart too quickly.
CREATE TABLE monitoring_places (
    school_id   int NOT NULL REFERENCES schools(id),
    outlet_id   bigint NOT NULL,
    x_m         int NOT NULL CHECK (x_m BETWEEN -100000 AND 100000),
    y_m         int NOT NULL CHECK (y_m BETWEEN -100000 AND 100000),
    PRIMARY KEY (school_id, outlet_id),
    FOREIGN KEY (school_id, outlet_id) REFERENCES outlets(school_id, id)
);

CREATE TABLE monitoring_alerts (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    person_id       bigint NOT NULL,
    rule            text NOT NULL,
    severity        smallint NOT NULL CHECK (severity BETWEEN 1 AND 3),
    reason          jsonb NOT NULL,                       -- {"zh-CN": "...", "en": "..."}
    facts           jsonb NOT NULL DEFAULT '{}'::jsonb,   -- the figures behind the reason
    source          text NOT NULL DEFAULT '',             -- 'payment:17', 'bill:4', 'daily:2026-03-02'
    dedupe_key      text NOT NULL,
    -- delivered to the student, or why not: 'duplicate' (same rule lately), 'budget' (enough
    -- alerts this week), 'quiet' (SMS held until quiet hours end; in-app at once)
    delivery        text NOT NULL DEFAULT 'sent'
                    CHECK (delivery IN ('sent', 'quiet', 'duplicate', 'budget')),
    business_date   date NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, dedupe_key),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE INDEX monitoring_alerts_person ON monitoring_alerts(school_id, person_id, created_at DESC);
CREATE INDEX monitoring_alerts_day ON monitoring_alerts(school_id, business_date, rule);

-- The student's own choices: quiet hours and whether alerts also come by SMS; a self-declared
-- diet keeps the student out of hardship candidates.
CREATE TABLE monitoring_student_prefs (
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    sms             boolean NOT NULL DEFAULT true,
    quiet_start     time,                                 -- both or neither
    quiet_end       time,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- A parent's subscription to one child: opt-in by the parent, consent by an adult student.
-- user_id is the parent's sign-in (guardian_links); users carry no school-leading key, so
-- the link is checked by the use case, not by a foreign key across the distribution.
CREATE TABLE monitoring_guardian_prefs (
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    user_id         bigint NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    rules           text[] NOT NULL DEFAULT '{}',          -- which alerts; empty: all
    low_balance     bigint CHECK (low_balance > 0),       -- the parent's own threshold (fen)
    single_spend    bigint CHECK (single_spend > 0),      -- the parent's own large spend (fen)
    sms             boolean NOT NULL DEFAULT false,
    quiet_start     time,
    quiet_end       time,
    consent_at      timestamptz,                          -- the student agreed
    consent_revoked_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id, user_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Which classes a counsellor looks after.
CREATE TABLE monitoring_counsellor_classes (
    school_id   int NOT NULL REFERENCES schools(id),
    user_id     bigint NOT NULL,
    class_id    bigint NOT NULL,
    PRIMARY KEY (school_id, user_id, class_id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id)
);

-- Reasons a student is never a hardship candidate: a self-declared diet, living off campus.
CREATE TABLE monitoring_exclusions (
    school_id   int NOT NULL REFERENCES schools(id),
    person_id   bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('diet', 'off_campus')),
    set_by      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id, kind),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);

-- How far each source of events has been read, and the events read past that point: a row
-- that commits late with a lower id is still read once (monitoring/events.py).
CREATE TABLE monitoring_cursors (
    school_id   int NOT NULL REFERENCES schools(id),
    source      text NOT NULL CHECK (source IN ('payment', 'refund')),
    last_id     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (school_id, source)
);
CREATE TABLE monitoring_seen (
    school_id   int NOT NULL REFERENCES schools(id),
    source      text NOT NULL,
    source_id   bigint NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, source, source_id)
);

-- Hidden hardship: a month's candidates with their reasons; a reviewer proposes a quiet
-- subsidy (a subsidy batch a second person approves) or sets the candidate aside.
CREATE TABLE hardship_candidates (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    month           date NOT NULL CHECK (extract(day FROM month) = 1),
    person_id       bigint NOT NULL,
    method          text NOT NULL,                        -- a preset or 'score'
    score           numeric(6, 3),
    facts           jsonb NOT NULL,                       -- meals, spend, days ...
    reasons         jsonb NOT NULL,                       -- [{"zh-CN": ..., "en": ...}]
    what_would_change jsonb NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),   -- the suggested help (fen)
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'proposed', 'set_aside')),
    batch_id        bigint,
    decided_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, month, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);

-- Quiet subsidies are subsidy batches too (made from hardship candidates).
ALTER TABLE subsidy_batches DROP CONSTRAINT subsidy_batches_source_check;
ALTER TABLE subsidy_batches ADD CONSTRAINT subsidy_batches_source_check
    CHECK (source IN ('file', 'rule', 'hardship'));
