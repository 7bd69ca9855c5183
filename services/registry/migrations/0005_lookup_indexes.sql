-- An erasure deletes a subject's blind indexes by subject id, and deleting a customer or a subject
-- cascades to them: without these indexes each of those read the whole lookup table (two rows per
-- customer), so an erasure's cost grew with the register (issue 17).
CREATE INDEX lookup_subject ON lookup (subject_id);
CREATE INDEX lookup_customer ON lookup (customer_number);
