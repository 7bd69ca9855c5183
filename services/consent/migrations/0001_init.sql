-- Purposes are data: what each one means in law, which version of the consent text the
-- customer saw, and which objection scopes (consent.inbound.v1 objection.filed) cover it.
-- A purpose not listed here is unknown: its events are dead-lettered as unknown_purpose.
CREATE TABLE purposes (
    purpose              text    PRIMARY KEY,
    legal_description    text    NOT NULL,
    consent_text_version text    NOT NULL,
    objection_scopes     text[]  NOT NULL,
    objection_basis      text    NOT NULL
);

INSERT INTO purposes (purpose, legal_description, consent_text_version, objection_scopes, objection_basis) VALUES
    ('profiling',
     'Analysis of customer data for service development and profiling (privacy statement §5); '
     'on the customer''s consent, GDPR Art. 6(1)(a); may be withdrawn at any time, Art. 7(3).',
     'profiling-2026-01', ARRAY['profiling', 'processing'], 'GDPR Art. 21(1): objection honoured'),
    ('direct_marketing',
     'Direct marketing to the customer (privacy statement §5); on the customer''s consent, '
     'GDPR Art. 6(1)(a); an objection is absolute, Art. 21(3).',
     'direct_marketing-2026-01', ARRAY['direct_marketing', 'processing'], 'GDPR Art. 21(3): objection honoured'),
    ('automated_decisions',
     'Decisions based solely on automated processing, profiling included, GDPR Art. 22; '
     'only with the customer''s explicit consent, Art. 22(2)(c).',
     'automated_decisions-2026-01', ARRAY['automated_decisions', 'processing'], 'GDPR Art. 21(1) and 22: objection honoured');

-- The ledger: one row per inbound event and purpose it concerns, never changed afterwards, so
-- that consent can be demonstrated (GDPR Art. 7(1)). outcome says what the event did:
-- 'changed' (the current state changed), 'unchanged' (same state again), 'stale' (older than
-- the current state: kept as proof, no effect). note explains the unusual cases.
CREATE TABLE ledger (
    entry_id             bigserial   PRIMARY KEY,
    event_id             text        NOT NULL,
    customer_number      text        NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('consent.given', 'consent.withdrawn', 'objection.filed')),
    purpose              text        NOT NULL,
    scope                text,
    channel              text,
    at                   timestamptz NOT NULL,
    consent_text_version text        NOT NULL,
    source               text        NOT NULL,
    outcome              text        NOT NULL CHECK (outcome IN ('changed', 'unchanged', 'stale')),
    state_after          text        NOT NULL CHECK (state_after IN ('granted', 'withdrawn', 'objected')),
    note                 text,
    recorded_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, purpose)
);
CREATE INDEX ledger_customer ON ledger (customer_number, entry_id);

-- Current state per customer and purpose, derived from the ledger (the latest event by `at`).
CREATE TABLE consent_state (
    customer_number text        NOT NULL,
    purpose         text        NOT NULL REFERENCES purposes,
    state           text        NOT NULL CHECK (state IN ('granted', 'withdrawn', 'objected')),
    effective_at    timestamptz NOT NULL,
    event_id        text        NOT NULL,
    scope           text,
    PRIMARY KEY (customer_number, purpose)
);

-- A consent receipt per change of state, shaped after the Kantara Consent Receipt v1.1.
CREATE TABLE receipts (
    receipt_id      uuid        PRIMARY KEY,
    customer_number text        NOT NULL,
    purpose         text        NOT NULL,
    event_id        text        NOT NULL,
    issued_at       timestamptz NOT NULL,
    receipt         jsonb       NOT NULL
);
CREATE INDEX receipts_customer ON receipts (customer_number, issued_at);

-- What an erasure keeps to honour an objection: the customer number and the objection's scope,
-- nothing else. The customer is never marketed to / profiled again under that scope unless a
-- consent given after the erasure says otherwise.
CREATE TABLE suppressions (
    customer_number text        NOT NULL,
    scope           text        NOT NULL,
    since           timestamptz NOT NULL,  -- when the erasure ran (not a fact about the person)
    PRIMARY KEY (customer_number, scope)
);

-- Append-only: the ledger and the receipts refuse UPDATE, DELETE and TRUNCATE, except inside
-- erase_customer() (an erasure request), which flags its own transaction.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('lampo.consent_erasure', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER receipts_append_only BEFORE UPDATE OR DELETE ON receipts
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER receipts_no_truncate BEFORE TRUNCATE ON receipts
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Erasure of one customer number: ledger and receipts go, the current objections become
-- suppression entries. Returns (ledger rows, receipts) removed.
CREATE FUNCTION erase_customer(cn text, erased_at timestamptz, OUT ledger_rows integer, OUT receipt_rows integer)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO suppressions (customer_number, scope, since)
        SELECT DISTINCT customer_number, scope, erased_at FROM consent_state
        WHERE customer_number = cn AND state = 'objected' AND scope IS NOT NULL
        ON CONFLICT DO NOTHING;
    PERFORM set_config('lampo.consent_erasure', 'on', true);
    DELETE FROM ledger WHERE customer_number = cn;
    GET DIAGNOSTICS ledger_rows = ROW_COUNT;
    DELETE FROM receipts WHERE customer_number = cn;
    GET DIAGNOSTICS receipt_rows = ROW_COUNT;
    PERFORM set_config('lampo.consent_erasure', 'off', true);
    DELETE FROM consent_state WHERE customer_number = cn;
END $$;
