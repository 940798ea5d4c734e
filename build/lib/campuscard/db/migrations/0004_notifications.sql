-- In-app notifications (the student's and parent's inbox) and events pushed after commit.

CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    person_id   bigint REFERENCES persons(id),          -- the cardholder it concerns
    user_id     bigint REFERENCES users(id),            -- the reader, when not the cardholder
    kind        text NOT NULL,
    title       jsonb NOT NULL,                         -- {"zh-CN": "...", "en": "..."}
    body        jsonb NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedupe_key  text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz,
    CHECK (person_id IS NOT NULL OR user_id IS NOT NULL)
);
CREATE INDEX notifications_person ON notifications(person_id, id DESC);
CREATE INDEX notifications_user ON notifications(user_id, id DESC);
