-- Recordings keys its data by customer number. key_id is a random pseudonymous id, the subject id
-- of the customer's data key in subject_keys: deleting that key shreds every recording and e-mail.
-- restricted_at: restricted at the subject's request (GDPR Art. 18): out of every normal query.
CREATE TABLE customers (
    customer_number text        PRIMARY KEY,
    key_id          text        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    restricted_at   timestamptz
);

-- Audio lives in PostgreSQL (bytea), encrypted with the customer's data key: one backup, one
-- transaction with the inbox, and erasure is a DELETE plus the key's destruction. The other
-- columns are metadata without personal data, searchable in clear.
CREATE TABLE recordings (
    recording_id    text             PRIMARY KEY,
    customer_number text             NOT NULL REFERENCES customers ON DELETE CASCADE,
    started_at      timestamptz      NOT NULL,
    duration_s      double precision NOT NULL,
    media_type      text             NOT NULL,
    size_bytes      bigint           NOT NULL,
    sha256          text             NOT NULL,  -- of the reassembled audio, before encryption
    chunk_count     integer          NOT NULL,
    audio           bytea            NOT NULL,
    stored_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX recordings_customer ON recordings (customer_number, started_at);
CREATE INDEX recordings_started ON recordings (started_at);

-- Chunks of recordings not yet complete: held here, encrypted, until the last one arrives
-- (`lampo recordings incomplete` lists them); never dropped.
CREATE TABLE recording_chunks (
    recording_id    text             NOT NULL,
    chunk_index     integer          NOT NULL,
    chunk_count     integer          NOT NULL CHECK (chunk_index >= 0 AND chunk_index < chunk_count),
    customer_number text             NOT NULL REFERENCES customers ON DELETE CASCADE,
    started_at      timestamptz      NOT NULL,
    duration_s      double precision NOT NULL,
    media_type      text             NOT NULL,
    expected_sha256 text,
    audio           bytea            NOT NULL,
    received_at     timestamptz      NOT NULL,
    PRIMARY KEY (recording_id, chunk_index)
);
CREATE INDEX recording_chunks_customer ON recording_chunks (customer_number);

-- Archived e-mails. The Message-ID may name a person's address, so it is kept encrypted with a
-- blind index (keyed hash) for de-duplication; subject and body are encrypted.
CREATE TABLE emails (
    customer_number text        NOT NULL REFERENCES customers ON DELETE CASCADE,
    message_key     bytea       NOT NULL,
    at              timestamptz NOT NULL,
    message_id      bytea       NOT NULL,
    subject         bytea       NOT NULL,
    body            bytea       NOT NULL,
    size_bytes      integer     NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_number, message_key)
);
CREATE INDEX emails_at ON emails (customer_number, at);
