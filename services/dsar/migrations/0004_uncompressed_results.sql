-- Sealed result parts and encrypted package chunks are stored as they are, never compressed:
-- ciphertext does not compress, and PostgreSQL tried on every row of an access request (see
-- the platform's 0002_outbox_uncompressed.sql). New rows only; no rewrite.
ALTER TABLE result_parts ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE package_chunks ALTER COLUMN blob SET STORAGE EXTERNAL;
ALTER TABLE packages ALTER COLUMN blob SET STORAGE EXTERNAL;
