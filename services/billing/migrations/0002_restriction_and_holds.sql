-- restricted_at: the customer is restricted at their request (GDPR Art. 18): items that arrive
-- while it stands are stored restricted too, until the restriction is lifted.
ALTER TABLE customers ADD COLUMN restricted_at timestamptz;

-- Billing's copy of the legal holds standing now (retention.holds.v1, internal: the latest
-- legal_hold.state per customer number). Scheduled deletions skip a customer held for billing.
-- Only pseudonymous references: hold ids and categories, never the case or the authority.
CREATE TABLE legal_holds (
    customer_number text        PRIMARY KEY,
    holds_billing   boolean     NOT NULL,
    hold_ids        text[]      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
