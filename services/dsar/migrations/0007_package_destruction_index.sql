-- An erasure reports what the packages it destroyed held by looking them up by their destruction
-- reason ('erasure:<request_id>'): through this index, not by a read of every package ever built
-- (issue 17: no statement on a request's path reads a table that grows with the register).
CREATE INDEX packages_destroyed_reason ON packages (destroyed_reason) WHERE destroyed_reason IS NOT NULL;
