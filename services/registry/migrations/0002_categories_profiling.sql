-- The rest of the register: relationship, contracts, consumption, interactions, profiling.
--
-- Protection at rest (what is encrypted, and why):
--   * sections.payload (names, birth date, personal identity code, business ID, address, phone,
--     e-mail, username, employer, position) and interactions.summary (free text that may say
--     anything about a person) are AES-GCM encrypted with the subject's data key: they identify
--     or describe the person directly, and destroying that one key erases every copy (backups
--     included).
--   * Identity codes, e-mails and business IDs are also kept as keyed hashes (lookup.digest) so
--     the register can find a subject without holding the value in clear.
--   * Left in clear, on purpose: customer numbers, metering point ids, contract ids, dates,
--     statuses, consumption figures, derived profile bands and provenance. They are pseudonymous
--     keys or figures that mean nothing without the encrypted identity, and the register must
--     join, aggregate (profiling) and check them (accuracy, retention) in SQL. Erasure deletes
--     their rows.

-- A section sent as null clears it: the row stays as a tombstone (payload NULL) with its event
-- time, so an older event arriving later cannot bring the cleared data back.
ALTER TABLE sections ALTER COLUMN payload DROP NOT NULL;

-- Plain copies of the pseudonymous keys inside encrypted sections, for joins and checks.
CREATE TABLE metering_points (
    customer_number text NOT NULL REFERENCES customers ON DELETE CASCADE,
    metering_point  text NOT NULL,
    subject_id      text NOT NULL REFERENCES subjects ON DELETE CASCADE,
    PRIMARY KEY (customer_number, metering_point)
);
CREATE INDEX metering_points_subject ON metering_points (subject_id);

-- A contact person (customer) and the organisation (customer) they act for.
CREATE TABLE contact_links (
    customer_number     text PRIMARY KEY REFERENCES customers ON DELETE CASCADE,
    organisation_number text NOT NULL,
    subject_id          text NOT NULL REFERENCES subjects ON DELETE CASCADE
);
CREATE INDEX contact_links_organisation ON contact_links (organisation_number);
CREATE INDEX contact_links_subject ON contact_links (subject_id);

-- Every data table below carries the same provenance columns as sections: source system,
-- origin (subject | authority | third_party), legal basis, the event time that orders updates
-- (an older event never overwrites a newer one) and when the row was written.
CREATE TABLE relationship_ends (
    customer_number text        PRIMARY KEY REFERENCES customers ON DELETE CASCADE,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    ended_at        timestamptz NOT NULL,
    event_time      timestamptz NOT NULL,
    event_id        text        NOT NULL,
    source_system   text        NOT NULL,
    origin          text        NOT NULL,
    legal_basis     text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX relationship_ends_subject ON relationship_ends (subject_id);

CREATE TABLE contracts (
    customer_number text        NOT NULL REFERENCES customers ON DELETE CASCADE,
    contract_id     text        NOT NULL,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    product         text        NOT NULL,
    status          text        NOT NULL,
    valid_from      date        NOT NULL,
    valid_to        date,
    metering_point  text,
    event_time      timestamptz NOT NULL,
    event_id        text        NOT NULL,
    source_system   text        NOT NULL,
    origin          text        NOT NULL,
    legal_basis     text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_number, contract_id)
);
CREATE INDEX contracts_subject ON contracts (subject_id);

CREATE TABLE consumption (
    customer_number     text          NOT NULL REFERENCES customers ON DELETE CASCADE,
    metering_point      text          NOT NULL,
    period_start        date          NOT NULL,
    period_end          date          NOT NULL,
    subject_id          text          NOT NULL REFERENCES subjects ON DELETE CASCADE,
    energy_mwh          numeric       NOT NULL,
    annual_forecast_mwh numeric,
    event_time          timestamptz   NOT NULL,
    event_id            text          NOT NULL,
    source_system       text          NOT NULL,
    origin              text          NOT NULL,
    legal_basis         text          NOT NULL,
    updated_at          timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_number, metering_point, period_start, period_end)
);
CREATE INDEX consumption_subject ON consumption (subject_id);

CREATE TABLE interactions (
    customer_number text        NOT NULL REFERENCES customers ON DELETE CASCADE,
    interaction_id  text        NOT NULL,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    channel         text        NOT NULL,
    at              timestamptz NOT NULL,
    summary         bytea       NOT NULL,   -- encrypted with the subject's data key
    event_time      timestamptz NOT NULL,
    event_id        text        NOT NULL,
    source_system   text        NOT NULL,
    origin          text        NOT NULL,
    legal_basis     text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_number, interaction_id)
);
CREATE INDEX interactions_subject ON interactions (subject_id);

-- The registry's copy of consent.events.v1 for the purposes it acts on (profiling, and objections
-- to processing). Keyed by customer number: consent may arrive before the customer does.
CREATE TABLE profiling_consent (
    customer_number text        NOT NULL,
    purpose         text        NOT NULL,
    state           text        NOT NULL,   -- granted | withdrawn | objected
    effective_at    timestamptz NOT NULL,
    PRIMARY KEY (customer_number, purpose)
);

-- Derived profile (§6 'services': derived profiles), only while profiling consent stands.
CREATE TABLE profiles (
    customer_number text        PRIMARY KEY REFERENCES customers ON DELETE CASCADE,
    subject_id      text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    annual_mwh      numeric     NOT NULL,
    band            text        NOT NULL,
    trend           text        NOT NULL,
    reports         integer     NOT NULL,
    computed_at     timestamptz NOT NULL,
    source_system   text        NOT NULL DEFAULT 'registry',
    origin          text        NOT NULL DEFAULT 'subject',
    legal_basis     text        NOT NULL DEFAULT 'consent'
);
CREATE INDEX profiles_subject ON profiles (subject_id);

-- Provenance per subject and category: source system, origin, legal basis and the last change,
-- one row per distinct (source, origin, basis) so mixed sources stay visible.
CREATE VIEW provenance AS
SELECT subject_id, category, source_system, origin, legal_basis, max(event_time) AS last_changed, count(*) AS items
FROM (
    SELECT subject_id, category, source_system, origin, legal_basis, event_time FROM sections WHERE payload IS NOT NULL
    UNION ALL
    SELECT subject_id, 'customer_relationship', source_system, origin, legal_basis, event_time FROM relationship_ends
    UNION ALL
    SELECT subject_id, 'customer_relationship', source_system, origin, legal_basis, event_time FROM contracts
    UNION ALL
    SELECT subject_id, 'customer_relationship', source_system, origin, legal_basis, event_time FROM interactions
    UNION ALL
    SELECT subject_id, 'consumption', source_system, origin, legal_basis, event_time FROM consumption
    UNION ALL
    SELECT subject_id, 'services', source_system, origin, legal_basis, computed_at FROM profiles
) AS held
GROUP BY subject_id, category, source_system, origin, legal_basis;
