-- Wrong pickup codes, counted per scope so one person's guesses do not lock a kiosk for the
-- next person: 'session' (one visit at a kiosk: terminal id and the kiosk's session id),
-- 'kiosk' (a ceiling for the whole kiosk, and the only limit for kiosks that send no session
-- id) and 'code' (guesses aimed at one pickup code, across kiosks). An attempt claims a place
-- in each scope before the code is checked (one statement each, so parallel guesses cannot
-- slip past the limit); a right code gives its places back. Replaces kiosk_code_guesses.
CREATE TABLE pickup_guesses (
    school_id     int NOT NULL REFERENCES schools(id),
    scope         text NOT NULL CHECK (scope IN ('session', 'kiosk', 'code')),
    key           text NOT NULL,
    attempts      int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    window_start  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, scope, key)
);
CREATE INDEX pickup_guesses_window ON pickup_guesses(window_start);
DROP TABLE kiosk_code_guesses;
