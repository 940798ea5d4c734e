-- Job workers say they are alive, so a load balancer's readiness probe (/api/ready) can tell
-- whether anyone is delivering the outbox and running periodic jobs. One row per worker
-- process, upserted every few seconds; rows older than a day are removed by the workers.
-- Not school data (a worker serves every school): a small table, a reference table under Citus.
CREATE TABLE worker_heartbeats (
    worker text PRIMARY KEY,            -- host:pid
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now()
);
