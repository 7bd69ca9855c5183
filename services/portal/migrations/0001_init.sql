-- The privacy centre's own records. No register data: customer numbers (pseudonymous ids),
-- request ids, the language a subject chose, and the MACs of one-time codes.

-- One-time codes sent to the e-mail address the register holds: only the HMAC of a code is
-- kept (the key is the service's, never the database's). A code holds until expires_at, for
-- max attempts wrong tries; used_at once it verified someone. Expired rows are pruned.
CREATE TABLE codes (
    challenge_id    uuid        PRIMARY KEY,
    customer_number text        NOT NULL,
    mac             bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    used_at         timestamptz
);
CREATE INDEX codes_by_customer ON codes (customer_number, created_at);
CREATE INDEX codes_by_expiry ON codes (expires_at);

-- The requests submitted here, and whose they are: a subject sees only their own. language is
-- the one chosen when submitting (the mail about the request is written in it).
CREATE TABLE requests (
    request_id      text        PRIMARY KEY,
    customer_number text        NOT NULL,
    kind            text        NOT NULL,
    language        text        NOT NULL CHECK (language IN ('fi', 'en')),
    verified_by     text        NOT NULL,
    submitted_at    timestamptz NOT NULL
);
CREATE INDEX requests_by_customer ON requests (customer_number, submitted_at DESC);

-- Mail about a request, one row per dsar.events.v1 event (its CloudEvents id): queued in the
-- consumer's transaction, sent by a background job that looks the address up at send time.
-- what: received | rejected | extended | completed | lift_notice; data: dates and reasons only.
CREATE TABLE mail_queue (
    event_id        text        PRIMARY KEY,
    request_id      text        NOT NULL REFERENCES requests (request_id),
    what            text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    queued_at       timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    gave_up         text
);
CREATE INDEX mail_due ON mail_queue (next_attempt_at) WHERE sent_at IS NULL AND gave_up IS NULL;
