-- 0001_init: messages, deliveries and attempts.
--
-- Times are integer unix nanoseconds in UTC (0 = unset), so the claim's
-- next_attempt_at <= now comparison is an exact integer compare. Maps and
-- lists are JSON text (NULL when empty).

CREATE TABLE messages (
    id              TEXT    PRIMARY KEY,
    route           TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL DEFAULT '',
    body_hash       TEXT    NOT NULL DEFAULT '',
    body            BLOB,
    headers         TEXT,
    query           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One message per route and idempotency key; messages without a key are
-- never repeats.
CREATE UNIQUE INDEX messages_idempotency ON messages (route, idempotency_key)
    WHERE idempotency_key <> '';

-- MessageList: newest first, keyset pagination on (created_at, id).
CREATE INDEX messages_created ON messages (created_at, id);

CREATE TABLE deliveries (
    id                 TEXT    PRIMARY KEY,
    message_id         TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    route              TEXT    NOT NULL,
    step               TEXT    NOT NULL,
    target             TEXT    NOT NULL,
    after_steps        TEXT,
    required           INTEGER NOT NULL DEFAULT 1,
    status             TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    attempts_at_replay INTEGER NOT NULL DEFAULT 0,
    replays            INTEGER NOT NULL DEFAULT 0,
    replayed_at        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    lease_owner        TEXT    NOT NULL DEFAULT '',
    last_error         TEXT    NOT NULL DEFAULT '',
    response_status    INTEGER NOT NULL DEFAULT 0,
    response_body      BLOB,
    response_headers   TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- A message's deliveries: MessageGet, and Resolve after each completion.
CREATE INDEX deliveries_message ON deliveries (message_id);

-- The claim: one target's scheduled or leased deliveries by due time. Only
-- live rows are in it, so it stays small however many deliveries are kept.
-- status is carried along so DeliveryStats can count from the index alone.
CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at, status)
    WHERE status IN ('scheduled', 'running');

-- DeliveryList: newest first, keyset pagination on (created_at, id).
CREATE INDEX deliveries_created ON deliveries (created_at, id);

-- Dead letters and waiting deliveries, for listing and for the stats.
CREATE INDEX deliveries_dead ON deliveries (created_at, id) WHERE status = 'dead';
CREATE INDEX deliveries_waiting ON deliveries (target) WHERE status = 'waiting';

CREATE TABLE attempts (
    delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    http_status INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT    NOT NULL,
    error       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
