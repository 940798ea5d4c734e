-- Outbox deliveries become procrastinate jobs (decision 0240). The outbox row stays the record
-- of what must happen; its job carries the attempts, the back-off and the failed state.
-- A row someone gave up on in the console is cancelled (who and when), never silently dropped.
ALTER TABLE outbox
    ADD COLUMN cancelled_at timestamptz,
    ADD COLUMN cancelled_by int;

-- Rows waiting for delivery when this version arrives get their job now, once.
SELECT procrastinate_defer_jobs_v1(ARRAY(
    SELECT ROW('outbox', 'outbox.deliver', 0, NULL, NULL,
               jsonb_build_object('outbox_id', id), NULL)::procrastinate_job_to_defer_v1
      FROM outbox WHERE delivered_at IS NULL ORDER BY id));

-- the old worker's claim index; deliveries are found through the jobs now
DROP INDEX IF EXISTS outbox_pending;
CREATE INDEX outbox_done ON outbox (coalesce(delivered_at, cancelled_at))
    WHERE delivered_at IS NOT NULL OR cancelled_at IS NOT NULL;
