-- A service's keys database (LAMPO_KEYS_DATABASE, e.g. lampo_<service>_keys): the per-subject data
-- keys, wrapped by the master key, apart from the data they protect, with a backup policy of
-- their own (docs/KEYS-AND-BACKUPS.md). A restored data backup alone decrypts nothing erased.
CREATE TABLE subject_keys (
    subject_id  text        PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    kek_id      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_keys_kek ON subject_keys (kek_id);
