-- "Who read customer X": the auditor's search of the staff console by customer number, newest
-- first, through an index instead of a scan of the whole chain.
-- Only while the service's role still owns audit_log (a fresh database): once `lampo db
-- protect-audit` has handed it to lampo_audit_owner, this role may not index it, and a deployment
-- being upgraded must not stop here; its administrator adds the index (docs/DATABASE-ROLES-AND-AUDIT.md).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'audit_log'
               AND tableowner = current_user) THEN
        CREATE INDEX audit_log_customer_seq ON audit_log (customer_number, seq) WHERE customer_number IS NOT NULL;
    ELSE
        RAISE NOTICE 'audit_log belongs to another role: its administrator creates audit_log_customer_seq';
    END IF;
END
$$;

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
