-- Customers whose processing is restricted at their request (GDPR Art. 18), placed and lifted by
-- the DSAR coordinator's restriction tasks. While a row stands, no purpose may use the customer
-- (`lampo consent check` answers not allowed); the ledger and receipts stay as they are. The
-- customer number and the time only; an erasure removes the row with the rest.
CREATE TABLE restrictions (
    customer_number text        PRIMARY KEY,
    since           timestamptz NOT NULL,
    request_id      text        NOT NULL
);
