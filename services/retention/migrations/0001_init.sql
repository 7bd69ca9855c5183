-- Which subject a customer number belongs to (from registry change notices). Pseudonymous ids.
CREATE TABLE subjects (
    customer_number text        PRIMARY KEY,
    subject_id      text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subjects_subject ON subjects (subject_id);

-- Retention clocks: when each trigger last started per customer number (and, for activity, per
-- category). trigger: relationship_ended | last_activity | financial_year_end | recording_made
-- | consent_withdrawn; category '' for the per-customer triggers. Times only, no personal data.
CREATE TABLE clocks (
    customer_number text        NOT NULL,
    trigger         text        NOT NULL,
    category        text        NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    PRIMARY KEY (customer_number, trigger, category)
);
CREATE INDEX clocks_trigger ON clocks (trigger, started_at);

-- Legal holds placed by authorities' cases. categories empty: every category.
CREATE TABLE holds (
    hold_id         text        PRIMARY KEY,
    customer_number text        NOT NULL,
    categories      text[]      NOT NULL,
    case_reference  text        NOT NULL,
    authority       text        NOT NULL,
    placed_at       timestamptz NOT NULL,
    released_at     timestamptz
);
CREATE INDEX holds_standing ON holds (customer_number) WHERE released_at IS NULL;

-- Who placed or released which hold, when, and through which interface. Append-only.
CREATE TABLE hold_audit (
    id              bigserial   PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    action          text        NOT NULL,   -- placed | released | placed_again | released_again
    hold_id         text        NOT NULL,
    customer_number text        NOT NULL,
    actor           text        NOT NULL,
    interface       text        NOT NULL,   -- kafka:retention.inbound.v1 | cli
    event_id        text,
    effective_at    timestamptz NOT NULL,
    detail          jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX hold_audit_hold ON hold_audit (hold_id);

CREATE FUNCTION retention_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER hold_audit_append_only BEFORE UPDATE OR DELETE ON hold_audit
    FOR EACH ROW EXECUTE FUNCTION retention_append_only();

-- One row per sweep run.
CREATE TABLE sweeps (
    sweep_id    text        PRIMARY KEY,
    as_of       timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    interface   text        NOT NULL,
    tasks       integer     NOT NULL DEFAULT 0,
    purges      integer     NOT NULL DEFAULT 0
);

-- Proof of deletion: what (category, participant), when, which rule and clock, the task that
-- carried it and the participant's answer. Pseudonymous ids only; never deleted by a sweep.
CREATE TABLE purges (
    id              bigserial   PRIMARY KEY,
    sweep_id        text        NOT NULL REFERENCES sweeps,
    task_id         text        NOT NULL,
    rule            text        NOT NULL,
    category        text        NOT NULL,
    participant     text        NOT NULL,
    customer_number text        NOT NULL,
    subject_id      text        NOT NULL,
    trigger         text        NOT NULL,
    trigger_at      timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    issued_at       timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'issued',   -- issued | done | failed
    confirmed_at    timestamptz,
    erased          integer,
    retained        integer,
    retained_basis  text,
    error           text,
    UNIQUE (customer_number, rule, trigger_at)
);
CREATE INDEX purges_task ON purges (task_id);
