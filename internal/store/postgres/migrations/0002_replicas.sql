-- Replicas of tandem serve that share this database, each upserting its
-- row on a heartbeat, so shared limits can be split by the live count.

CREATE TABLE replicas (
    owner      text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);
