-- Bill sheets the finance office imported: every version kept with its checksum, so the same
-- file again replays and any version can be fetched back (bills/sheets.py).
CREATE TABLE bill_sheet_imports (
    school_id     int NOT NULL REFERENCES schools(id),
    id            bigint GENERATED ALWAYS AS IDENTITY,
    term          text NOT NULL,
    sha256        text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    filename      text NOT NULL,
    content       bytea NOT NULL,
    rows          int NOT NULL,
    added         int NOT NULL,
    unchanged     int NOT NULL,
    canonical_sha256 text NOT NULL,
    imported_by   text NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, term, sha256)
);
