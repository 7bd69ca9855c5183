-- What an objection objects to and whether a restriction is lifted (dsar.submitted scope / lift),
-- when a lift's notice went to the subject (Art. 18(3)), and each task's effects (what it did or
-- may not do, carried into dsar.completed).
ALTER TABLE requests ADD COLUMN scope text;
ALTER TABLE requests ADD COLUMN lift boolean NOT NULL DEFAULT false;
ALTER TABLE requests ADD COLUMN lift_notice_at timestamptz;
ALTER TABLE tasks ADD COLUMN effects jsonb NOT NULL DEFAULT '[]';

-- Subjects standing restricted (Art. 18): set when a restriction completes, removed when its lift
-- completes. A lift for a subject not in this table is refused (invalid, naming lift).
CREATE TABLE restrictions (
    subject_id    text        PRIMARY KEY,
    request_id    text        NOT NULL,
    restricted_at timestamptz NOT NULL
);
-- Requests whose lift tasks wait for their notice to leave the outbox.
CREATE INDEX requests_lift_notice ON requests (request_id) WHERE status = 'accepted' AND lift_notice_at IS NOT NULL;
