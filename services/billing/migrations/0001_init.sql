-- Billing keys its data by customer number. key_id is a random pseudonymous id, the subject id of
-- the customer's data key in subject_keys: deleting that key shreds every item of the customer.
-- erased_at: an erasure ran and some items are still kept by a statute (restricted, scheduled).
CREATE TABLE customers (
    customer_number text        PRIMARY KEY,
    key_id          text        NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    erased_at       timestamptz
);

-- One row per invoice, payment, collection case or credit check. payload is the item's JSON
-- (lines, amounts, agency, provider, verdict) encrypted with the customer's data key; the
-- clear columns are pseudonymous references and the dates retention runs from.
CREATE TABLE items (
    item_id           text        PRIMARY KEY,  -- the CloudEvent id of the event that brought it
    customer_number   text        NOT NULL REFERENCES customers ON DELETE CASCADE,
    kind              text        NOT NULL CHECK (kind IN ('invoice', 'payment', 'collection', 'credit_check')),
    invoice_number    text,
    occurred_at       timestamptz NOT NULL,
    payload           bytea       NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    restricted_at     timestamptz,
    -- 'retention': kept after an erasure only because a statute requires it;
    -- 'restriction': restricted at the subject's request (GDPR Art. 18).
    restricted_reason text        CHECK (restricted_reason IN ('retention', 'restriction')),
    CHECK ((restricted_at IS NULL) = (restricted_reason IS NULL))
);
CREATE INDEX items_customer ON items (customer_number);
CREATE UNIQUE INDEX items_invoice_number ON items (customer_number, invoice_number) WHERE kind = 'invoice';

-- Every normal query and export reads this view: restricted items are not in it.
CREATE VIEW active_items AS
    SELECT item_id, customer_number, kind, invoice_number, occurred_at, payload, received_at
      FROM items WHERE restricted_at IS NULL;

-- Items an erasure had to keep, and the last day a statute keeps them; `lampo billing purge-due`
-- deletes them once that day has passed (and destroys the key when nothing of the customer is left).
CREATE TABLE scheduled_deletions (
    item_id         text        PRIMARY KEY REFERENCES items ON DELETE CASCADE,
    customer_number text        NOT NULL,
    delete_after    date        NOT NULL,
    legal_basis     text        NOT NULL,
    request_id      text        NOT NULL,
    scheduled_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_deletions_due ON scheduled_deletions (delete_after);
