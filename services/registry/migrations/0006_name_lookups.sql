-- Staff look-up by name (issue 18): the lookup table's blind indexes gain the kinds
-- 'person_name' and 'person_name_last_first' (a person's first names and last name, in both
-- orders) and 'organisation_name', each the keyed hash of the name case-folded with its
-- whitespace collapsed; an exact match, never used to match identities (two people may share a
-- name). Every upsert, rectification and erasure keeps them in step, as the other kinds.
--
-- The keyed hash needs the index key, which the database never holds: the service backfills the
-- names of the sections stored before this migration (lampo.registry.search.backfill_names, at
-- start-up, a page at a time) and marks the kind done here.
CREATE TABLE lookup_backfills (
    kind    text        PRIMARY KEY,
    done_at timestamptz
);
INSERT INTO lookup_backfills (kind) VALUES ('name');
