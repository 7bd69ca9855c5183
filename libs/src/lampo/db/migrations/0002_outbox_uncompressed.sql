-- Outbox values are stored as they are, never compressed: the large ones are sealed access
-- results (base64 of encrypted, deflated bytes), which PostgreSQL's compression cannot shrink
-- but tried, row after row, on the access path (about 0.1 s of the database's CPU for every
-- 25 MB written). A row leaves the outbox as soon as it is sent. New rows only; no rewrite.
ALTER TABLE outbox ALTER COLUMN value SET STORAGE EXTERNAL;
