-- Transactional outbox: events written in the same transaction as the change they announce,
-- relayed to Kafka by the service's relay, then deleted. traceparent keeps the flow one trace.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    value       bytea       NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    subject_id  text,
    traceparent text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_subject ON outbox (subject_id) WHERE subject_id IS NOT NULL;

-- Inbox: ids of handled events per consumer, committed with the effect: redelivery is a no-op.
-- Only ids are kept here, never payloads.
CREATE TABLE inbox (
    consumer   text        NOT NULL,
    event_id   text        NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Per-subject data keys, wrapped by the service's master key. Deleting a row is crypto-shredding:
-- every field encrypted with that key, wherever a copy lies, becomes unreadable.
CREATE TABLE subject_keys (
    subject_id  text        PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Participant protocol: the answer given to each privacy task, so a repeated task is answered
-- again without redoing it. Holds counts and sealed results only.
CREATE TABLE privacy_tasks (
    task_id    text        PRIMARY KEY,
    request_id text        NOT NULL,
    kind       text        NOT NULL,
    ack        jsonb       NOT NULL,
    done_at    timestamptz NOT NULL DEFAULT now()
);
