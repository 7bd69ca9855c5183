-- "Who read customer X": the auditor's search of the staff console by customer number, newest
-- first, through an index instead of a scan of the whole chain.
CREATE INDEX audit_log_customer_seq ON audit_log (customer_number, seq) WHERE customer_number IS NOT NULL;

-- The follow-up of the accuracy report (privacy statement §12): who checked which finding of
-- which customer, when, and what came of it. Codes only, never a value of the customer's data.
CREATE TABLE accuracy_followups (
    id              bigserial   PRIMARY KEY,
    at              timestamptz NOT NULL,
    username        text        NOT NULL,
    customer_number text        NOT NULL,
    finding         text        NOT NULL,
    outcome         text        NOT NULL
);
CREATE INDEX accuracy_followups_customer ON accuracy_followups (customer_number, at);
