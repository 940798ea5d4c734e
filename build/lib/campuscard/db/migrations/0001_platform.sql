-- Tenancy, people, users, roles, sessions and the append-only audit log.
-- Every tenant table carries school_id so the data can be distributed by school later.

CREATE TABLE provinces (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL UNIQUE,
    name_en     text NOT NULL
);

CREATE TABLE schools (
    id          serial PRIMARY KEY,
    province_id int NOT NULL REFERENCES provinces(id),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_-]{2,32}$'),
    name        text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    -- business day starts this long after local midnight (settlement cut-off)
    day_cutoff  interval NOT NULL DEFAULT '0 hours',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (province_id, name)
);

-- function cc_check_timezone: people/db/cc_check_timezone.sql
-- trigger schools_timezone: people/db/schools_timezone.sql

-- function cc_business_date: people/db/cc_business_date.sql

CREATE TABLE classes (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    kind        text NOT NULL DEFAULT 'class' CHECK (kind IN ('class', 'department')),
    name        text NOT NULL,
    grade       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, name),
    UNIQUE (school_id, id)
);

CREATE TABLE persons (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    kind            text NOT NULL CHECK (kind IN ('student', 'staff', 'visitor')),
    number          text NOT NULL CHECK (number ~ '^[A-Za-z0-9_-]{1,32}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    class_id        bigint,
    phone           text CHECK (phone ~ '^\+?[0-9]{5,20}$'),
    category        text NOT NULL DEFAULT 'regular',
    -- the holder's account: none until opened; frozen blocks all spending; closed on leaving
    account_status  text NOT NULL DEFAULT 'none'
                    CHECK (account_status IN ('none', 'active', 'frozen', 'closed')),
    status          text NOT NULL DEFAULT 'enrolled' CHECK (status IN ('enrolled', 'left')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, number),
    UNIQUE (school_id, id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id)
);
CREATE INDEX persons_class ON persons(class_id);
CREATE INDEX persons_name ON persons(school_id, name);

CREATE TABLE guardians (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    person_id   bigint NOT NULL,
    name        text NOT NULL,
    phone       text NOT NULL CHECK (phone ~ '^\+?[0-9]{5,20}$'),
    relation    text NOT NULL DEFAULT 'parent',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (person_id, phone),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE INDEX guardians_phone ON guardians(phone);

-- Everyone who signs in: operators, merchant staff, cardholders and parents.
CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    school_id       int REFERENCES schools(id),          -- NULL: platform-level user
    username        text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@+-]{2,64}$'),
    display_name    text NOT NULL DEFAULT '',
    password_hash   text NOT NULL,
    person_id       bigint REFERENCES persons(id),       -- set for cardholders
    phone           text,
    locale          text NOT NULL DEFAULT 'zh-CN' CHECK (locale IN ('zh-CN', 'en')),
    is_active       boolean NOT NULL DEFAULT true,
    failed_logins   int NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (school_id, username)
);
CREATE UNIQUE INDEX users_person ON users(person_id) WHERE person_id IS NOT NULL;

CREATE TABLE user_roles (
    user_id     bigint NOT NULL REFERENCES users(id),
    role        text NOT NULL CHECK (role IN (
                    'platform_admin', 'school_admin', 'card_center', 'settlement',
                    'teacher', 'merchant_staff', 'merchant_manager', 'cardholder', 'guardian')),
    school_id   int REFERENCES schools(id),             -- NULL only for platform_admin
    merchant_id bigint,                                 -- for merchant roles
    UNIQUE NULLS NOT DISTINCT (user_id, role, school_id, merchant_id),
    CHECK ((role = 'platform_admin') = (school_id IS NULL))
);

-- Parents see the children linked here.
CREATE TABLE guardian_links (
    user_id     bigint NOT NULL REFERENCES users(id),
    person_id   bigint NOT NULL REFERENCES persons(id),
    school_id   int NOT NULL REFERENCES schools(id),
    PRIMARY KEY (user_id, person_id)
);

CREATE TABLE auth_sessions (
    id              bigserial PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,               -- sha256 of the bearer token/cookie
    user_id         bigint NOT NULL REFERENCES users(id),
    kind            text NOT NULL CHECK (kind IN ('web', 'api')),
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX auth_sessions_user ON auth_sessions(user_id);

-- Append-only: every administrative action, who/what/when/before/after, hash-chained.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    school_id       int REFERENCES schools(id),
    actor_user_id   bigint REFERENCES users(id),
    actor           text NOT NULL,                       -- username, terminal SN or 'system'
    action          text NOT NULL,
    target_type     text NOT NULL DEFAULT '',
    target_id       text NOT NULL DEFAULT '',
    before          jsonb,
    after           jsonb,
    request_id      text,
    ip              text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    prev_hash       text NOT NULL DEFAULT '',
    hash            text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_school ON audit_log(school_id, id DESC);
CREATE INDEX audit_log_target ON audit_log(target_type, target_id);

-- function cc_audit_chain: platform/db/cc_audit_chain.sql
-- trigger audit_log_chain: platform/db/audit_log_chain.sql

-- function cc_refuse_change: platform/db/cc_refuse_change.sql
-- trigger audit_log_append_only: platform/db/audit_log_append_only.sql
-- trigger audit_log_no_truncate: platform/db/audit_log_no_truncate.sql
