-- An offline record was checked against its terminal and its upload, a foreign key each, for
-- every row; both are the same till's (the upload is that till's, stored in the same
-- transaction). One key to the upload by (school, upload, terminal) proves both: the upload's
-- own key proves the terminal, and a record can no longer name an upload of another till.
-- docs/decisions/0391-offline-records-keyed-to-their-upload-and-till.md
ALTER TABLE offline_uploads ADD CONSTRAINT offline_uploads_school_id_id_terminal_id_key
    UNIQUE (school_id, id, terminal_id);
ALTER TABLE offline_records ADD CONSTRAINT offline_records_upload_terminal_fkey
    FOREIGN KEY (school_id, upload_id, terminal_id)
    REFERENCES offline_uploads(school_id, id, terminal_id);
ALTER TABLE offline_records DROP CONSTRAINT IF EXISTS offline_records_school_id_upload_id_fkey;
ALTER TABLE offline_records DROP CONSTRAINT IF EXISTS offline_records_school_id_terminal_id_fkey;
