-- The audit chain becomes keyed: new rows carry HMAC-SHA256 under LAMPO_AUDIT_KEY, a key the
-- database never holds (scheme 'hmac-sha256'). Rows written before keep the unkeyed SHA-256
-- (scheme 'sha256'); the first keyed row seals them, as its MAC covers their last hash.
ALTER TABLE audit_log ADD COLUMN scheme text NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_log ALTER COLUMN scheme DROP DEFAULT;

-- Failed logins, counted per address and in a window without reading the audit log: the
-- per-address throttle and the repeated-failures alert look here through an index.
-- address is a digest of the client's address, never the address itself.
CREATE TABLE login_failures (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL,
    address text        NOT NULL
);
CREATE INDEX login_failures_address_at ON login_failures (address, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Confidentiality commitments (§8): who, when, which version of the text. A staff account sees
-- no customer data until it has one for the version in force.
CREATE TABLE confidentiality_commitments (
    username     text        NOT NULL REFERENCES users ON DELETE CASCADE,
    text_version text        NOT NULL,
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (username, text_version)
);
