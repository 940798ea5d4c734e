-- Failed sign-ins at a name that has no account, counted like a real account's
-- (users.failed_logins), so a stranger cannot tell a real username by its lock. school_id is
-- the school typed (0: none or unknown); the name is what was typed. Rows are small and expire:
-- the job platform.jobs.forget_login_throttle deletes those untouched for a day.
CREATE TABLE login_throttle (
    school_id     int NOT NULL,
    name          text NOT NULL,
    failures      int NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, name)
);
CREATE INDEX login_throttle_updated ON login_throttle(updated_at);
