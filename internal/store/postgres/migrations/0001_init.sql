-- Messages, their deliveries (one per step) and the attempts of each.
-- Times are timestamptz (microseconds); every time comes from the caller's
-- clock (the params' Now), never from the database's now().

CREATE TABLE messages (
    id              text PRIMARY KEY,
    route           text NOT NULL,
    status          text NOT NULL,
    -- bytea, not text: an inbound header may hold bytes that are not UTF-8.
    idempotency_key bytea NOT NULL DEFAULT '',
    body_hash       text NOT NULL DEFAULT '',
    body            bytea,
    headers         bytea, -- JSON object of string arrays
    query           bytea, -- JSON object of string arrays
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- Two replicas racing on one key create one message: the loser's
-- INSERT ... ON CONFLICT DO NOTHING waits for the winner, then skips.
CREATE UNIQUE INDEX messages_idempotency_key ON messages (route, idempotency_key)
    WHERE idempotency_key <> '';
CREATE INDEX messages_created ON messages (created_at DESC, id DESC);
CREATE INDEX messages_route_created ON messages (route, created_at DESC, id DESC);
CREATE INDEX messages_status_created ON messages (status, created_at DESC, id DESC);

CREATE TABLE deliveries (
    id                 text PRIMARY KEY,
    message_id         text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    route              text NOT NULL,
    step               text NOT NULL,
    target             text NOT NULL,
    after_steps        jsonb NOT NULL DEFAULT '[]',
    required           boolean NOT NULL DEFAULT false,
    status             text NOT NULL,
    attempts           integer NOT NULL DEFAULT 0,
    -- scheduled: when due; running: when the lease ends; else NULL when unset.
    next_attempt_at    timestamptz,
    lease_owner        text NOT NULL DEFAULT '',
    last_error         text NOT NULL DEFAULT '',
    response_status    integer NOT NULL DEFAULT 0,
    response_body      bytea,
    response_headers   bytea,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    replays            integer NOT NULL DEFAULT 0,
    attempts_at_replay integer NOT NULL DEFAULT 0,
    replayed_at        timestamptz,
    UNIQUE (message_id, step)
);

-- The claim's index: only deliveries that can become due are in it, so it
-- stays small however many finished deliveries the table keeps.
CREATE INDEX deliveries_due ON deliveries (target, next_attempt_at)
    WHERE status IN ('scheduled', 'running');
-- Queue-depth gauges count the open and dead deliveries per target.
CREATE INDEX deliveries_open ON deliveries (target, status)
    WHERE status IN ('waiting', 'scheduled', 'running', 'dead');
CREATE INDEX deliveries_created ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_status_created ON deliveries (status, created_at DESC, id DESC);

CREATE TABLE attempts (
    delivery_id text NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           integer NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ns bigint NOT NULL DEFAULT 0,
    http_status integer NOT NULL DEFAULT 0,
    outcome     text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, n)
);
