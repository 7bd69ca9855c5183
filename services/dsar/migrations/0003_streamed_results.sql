-- Streamed access results (lampo.participant: parts sealed one by one, "f1.<run>.<sealed>"):
-- each part is kept as it arrives, under the run (one reading of the result) it belongs to;
-- the last part of a run names how many it has (total). The first run whose parts are all
-- there is the task's result (the task records it), and the package is built from its parts,
-- part by part; other runs' parts (a task read again after a retry) are dropped.
ALTER TABLE result_parts ADD COLUMN run text;
ALTER TABLE result_parts ADD COLUMN total integer;
ALTER TABLE tasks ADD COLUMN result_run text;
ALTER TABLE tasks ADD COLUMN result_parts integer;

-- A package is stored in chunks, each encrypted on its own with the package's key (field
-- 'package:<n>'): never the whole ZIP and its encrypted copy in memory at once. packages.blob
-- stays for packages stored whole before this migration.
ALTER TABLE packages ALTER COLUMN blob DROP NOT NULL;
CREATE TABLE package_chunks (
    request_id text    NOT NULL REFERENCES packages (request_id) ON DELETE CASCADE,
    n          integer NOT NULL,
    blob       bytea   NOT NULL,
    PRIMARY KEY (request_id, n)
);

-- Part numbers repeat across runs: a part is one of its task's run.
ALTER TABLE result_parts DROP CONSTRAINT result_parts_pkey;
CREATE UNIQUE INDEX result_parts_part ON result_parts (task_id, coalesce(run, ''), part);
