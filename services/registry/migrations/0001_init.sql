-- A subject is one person or organisation; it may hold several customer numbers.
CREATE TABLE subjects (
    subject_id            text        PRIMARY KEY,
    kind                  text        NOT NULL,
    restricted            boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    relationship_ended_at timestamptz
);

CREATE TABLE customers (
    customer_number text        PRIMARY KEY,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_subject ON customers (subject_id);

-- One row per customer number and section of customer.upserted. The payload is the section's
-- JSON encrypted with the subject's data key; provenance and legal basis stay readable so that
-- policy, access reports and accuracy checks need no decryption. event_time orders updates:
-- an older event never overwrites a newer one.
CREATE TABLE sections (
    customer_number text        NOT NULL REFERENCES customers ON DELETE CASCADE,
    section         text        NOT NULL,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    category        text        NOT NULL,
    payload         bytea       NOT NULL,
    event_time      timestamptz NOT NULL,
    event_id        text        NOT NULL,
    source_system   text        NOT NULL,
    origin          text        NOT NULL,
    legal_basis     text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_number, section)
);
CREATE INDEX sections_subject ON sections (subject_id);

-- Blind indexes (keyed hashes) for identity resolution without storing the values.
CREATE TABLE lookup (
    kind            text  NOT NULL,   -- 'personal_identity_code' | 'email' | 'business_id'
    digest          bytea NOT NULL,
    customer_number text  NOT NULL REFERENCES customers ON DELETE CASCADE,
    subject_id      text  NOT NULL REFERENCES subjects ON DELETE CASCADE,
    PRIMARY KEY (kind, customer_number)
);
CREATE INDEX lookup_digest ON lookup (kind, digest);
