-- Data subject requests. Personal data (the identifiers, a rectification's corrections) is kept
-- only encrypted, with the request's own key (KeyRing subject 'request:<id>'), and that key is
-- destroyed once the request is finished: what remains are pseudonymous ids and facts.
CREATE TABLE requests (
    request_id        text        PRIMARY KEY,
    kind              text        NOT NULL,
    status            text        NOT NULL,
    channel           text        NOT NULL,
    verification      jsonb,
    categories        text[],                  -- NULL: every category
    sealed_input      bytea,                   -- identifiers and corrections, encrypted
    subject_id        text,
    customer_numbers  text[],
    subject_kind      text,
    received_at       timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    extended_at       timestamptz,
    extended_by       text,
    extension_reason  text,
    approved_by       text,
    approved_at       timestamptz,
    denied_by         text,
    denial_reason     text,
    reject_reason     text,
    reject_detail     text,
    resolve_attempts  integer     NOT NULL DEFAULT 0,
    resolve_error     text,
    next_resolve_at   timestamptz,
    traceparent       text,
    result_public_key text,                    -- access / portability: the request's X25519 key
    sealed_private_key bytea,                  -- its private half, encrypted ('result-key:<id>')
    overdue_at        timestamptz,
    completed_at      timestamptz,
    completion        jsonb,                   -- the last dsar.completed data
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX requests_resolve ON requests (next_resolve_at) WHERE status = 'received';
CREATE INDEX requests_due ON requests (due_at) WHERE overdue_at IS NULL;
CREATE INDEX requests_subject ON requests (subject_id);

-- Every transition with its time and actor (system, an approver, an operator, a channel).
CREATE TABLE transitions (
    id          bigserial   PRIMARY KEY,
    request_id  text        NOT NULL REFERENCES requests (request_id),
    from_status text,
    to_status   text        NOT NULL,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    detail      text
);
CREATE INDEX transitions_request ON transitions (request_id, id);

-- One row per task sent (a timeout retry keeps its row and task_id; an operator's retry of a
-- failed participant supersedes the row with a new task). Sealed access results wait here,
-- still encrypted to the request's key, until the package is built.
CREATE TABLE tasks (
    task_id       text        PRIMARY KEY,
    request_id    text        NOT NULL REFERENCES requests (request_id),
    participant   text        NOT NULL,
    kind          text        NOT NULL,
    categories    text[]      NOT NULL,
    status        text        NOT NULL,        -- open | done | failed | superseded | cancelled
    current       boolean     NOT NULL DEFAULT true,
    attempt       integer     NOT NULL,
    first_sent_at timestamptz NOT NULL,
    sent_at       timestamptz NOT NULL,
    timeout_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    error         text,
    erased        jsonb       NOT NULL DEFAULT '{}',
    retained      jsonb       NOT NULL DEFAULT '[]',
    hold_retained jsonb       NOT NULL DEFAULT '[]',  -- kept under legal holds, never sent
    sealed_result text
);
CREATE UNIQUE INDEX tasks_current ON tasks (request_id, participant) WHERE current;
CREATE INDEX tasks_request ON tasks (request_id);
CREATE INDEX tasks_timeout ON tasks (timeout_at) WHERE status = 'open';

-- Acks that came after their task was final (late after a timeout, or cancelled): kept as a
-- record, not applied.
CREATE TABLE ignored_acks (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    task_id     text        NOT NULL,
    request_id  text        NOT NULL,
    participant text        NOT NULL,
    ack_status  text        NOT NULL,
    task_status text        NOT NULL,
    received_at timestamptz NOT NULL
);

-- Access / portability packages, encrypted with a per-request key ('package:<id>'):
-- destroying that key deletes the package.
CREATE TABLE packages (
    request_id  text        PRIMARY KEY REFERENCES requests (request_id),
    blob        bytea       NOT NULL,
    sha256      text        NOT NULL,
    size_bytes  integer     NOT NULL,
    created_at  timestamptz NOT NULL
);

-- Current legal holds per customer number, from retention.holds.v1 (compacted).
CREATE TABLE legal_holds (
    customer_number text        PRIMARY KEY,
    holds           jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
