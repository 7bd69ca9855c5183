-- Staff accounts. Created only by an administrator (or, once, by `lampo admin create-first-admin`).
-- password_hash is argon2id (PHC string); the password itself is never stored or logged.
CREATE TABLE users (
    username            text        PRIMARY KEY,
    password_hash       text        NOT NULL,
    created_by          text        NOT NULL,
    created_at          timestamptz NOT NULL,
    failed_attempts     integer     NOT NULL DEFAULT 0,
    locked_at           timestamptz
);

-- A user's rights are exactly the roles granted here (roles themselves are data: roles.toml).
CREATE TABLE grants (
    username   text        NOT NULL REFERENCES users ON DELETE CASCADE,
    role       text        NOT NULL,
    granted_by text        NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (username, role)
);

-- Bearer tokens, stored as sha256 only: a copy of this table logs nobody in.
CREATE TABLE sessions (
    token_hash bytea       PRIMARY KEY,
    username   text        NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz
);
CREATE INDEX sessions_user ON sessions (username);

-- The audit log: append-only and hash-chained. hash = sha256(prev_hash || canonical JSON of the
-- row's content), so an edited or deleted row breaks the chain (`lampo admin audit verify`).
-- The triggers refuse UPDATE, DELETE and TRUNCATE to everyone but a superuser who disables them.
CREATE TABLE audit_log (
    seq             bigint      PRIMARY KEY,
    at              timestamptz NOT NULL,
    actor           text        NOT NULL,
    action          text        NOT NULL,
    interface       text        NOT NULL,
    customer_number text,
    categories      text[]      NOT NULL DEFAULT '{}',
    outcome         text        NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}',
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL
);
CREATE INDEX audit_log_actor_action ON audit_log (actor, action, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Alerts: repeated login failures, lockouts, unusual read volumes. No personal data of customers.
CREATE TABLE alerts (
    id       bigserial   PRIMARY KEY,
    at       timestamptz NOT NULL,
    kind     text        NOT NULL,
    username text,
    detail   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_kind_user ON alerts (kind, username, at);
