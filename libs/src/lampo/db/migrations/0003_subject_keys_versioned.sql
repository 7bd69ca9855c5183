-- Versioned wrapping: each wrapped subject key names the key-encryption key it is wrapped under
-- (kek_id, a fingerprint derived from the master key, never the key). NULL: wrapped before
-- versioning, by the master key of that time. `lampo keys rotate` re-wraps every key under the
-- current master key.
ALTER TABLE subject_keys ADD COLUMN kek_id text;
CREATE INDEX subject_keys_kek ON subject_keys (kek_id);
