-- The package's life: whose it is (the pseudonymous subject and customer numbers of its
-- request, so an erasure of that subject finds it), when it expires, when and why it was
-- destroyed (its key and chunks gone: the address answers 410), and the categories it held
-- (an erasure reports what its destruction erased). Packages built before this migration
-- expire 30 days after they were made; a new package's expiry is set when it is stored.
ALTER TABLE packages ADD COLUMN subject_id text;
ALTER TABLE packages ADD COLUMN customer_numbers text[] NOT NULL DEFAULT '{}';
ALTER TABLE packages ADD COLUMN categories text[] NOT NULL DEFAULT '{}';
ALTER TABLE packages ADD COLUMN expires_at timestamptz;
ALTER TABLE packages ADD COLUMN destroyed_at timestamptz;
ALTER TABLE packages ADD COLUMN destroyed_reason text;      -- expired | erasure:<request_id>
UPDATE packages p SET subject_id = r.subject_id, customer_numbers = coalesce(r.customer_numbers, '{}'),
    expires_at = p.created_at + interval '30 days'
    FROM requests r WHERE r.request_id = p.request_id;
CREATE INDEX packages_expiry ON packages (expires_at) WHERE destroyed_at IS NULL;
CREATE INDEX packages_subject ON packages (subject_id) WHERE destroyed_at IS NULL;
CREATE INDEX packages_customer_numbers ON packages USING gin (customer_numbers) WHERE destroyed_at IS NULL;

-- Every fetch of a package (over HTTP by a caller, or written out by an operator's CLI), every
-- transfer to another controller and every destruction: who (a caller's or operator's name,
-- never the subject's data), when, what, and how it ended. Append only.
CREATE TABLE package_log (
    id          bigserial   PRIMARY KEY,
    request_id  text        NOT NULL,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,   -- fetch | cli_write | transfer | destroy
    outcome     text        NOT NULL,   -- delivered | forbidden | not_found | gone | failed | destroyed
    detail      text                    -- transfer: where it went and its answer; destroy: expired | erasure:<request_id>
);
CREATE INDEX package_log_request ON package_log (request_id, id);
