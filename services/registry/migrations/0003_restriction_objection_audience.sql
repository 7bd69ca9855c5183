-- Restriction (GDPR Art. 18), objections (Art. 21) and the direct-marketing audience.

-- The derived profile is not data the subject provided (Art. 20): its origin says so, so that
-- a portability package leaves it out.
ALTER TABLE profiles ALTER COLUMN origin SET DEFAULT 'derived';
UPDATE profiles SET origin = 'derived' WHERE source_system = 'registry';

-- Why a subject is restricted, one row per reason: 'request' (the subject asked, Art. 18(1)),
-- 'objection_pending' (an objection to processing waits for its decision, Art. 18(1)(d)),
-- 'objection_upheld' (the objection stood: only storage goes on). subjects.restricted stays the
-- flag every normal read filters on: true while any row stands.
CREATE TABLE restrictions (
    subject_id text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    reason     text        NOT NULL,
    since      timestamptz NOT NULL,
    request_id text,
    PRIMARY KEY (subject_id, reason)
);
INSERT INTO restrictions (subject_id, reason, since)
SELECT subject_id, 'request', now() FROM subjects WHERE restricted;

-- Objections filed through a DSAR, per subject and scope (the last one filed): 'honoured'
-- (profiling, direct marketing: acted on at once), 'recorded' (automated decisions: the register
-- makes none), 'pending' | 'upheld' | 'rejected' (processing based on legitimate interests).
CREATE TABLE objections (
    subject_id text        NOT NULL REFERENCES subjects ON DELETE CASCADE,
    scope      text        NOT NULL,
    status     text        NOT NULL,
    filed_at   timestamptz NOT NULL,
    request_id text        NOT NULL,
    decided_at timestamptz,
    PRIMARY KEY (subject_id, scope)
);

-- profiling_consent now also keeps direct_marketing states (its name is historical): the
-- direct-marketing audience is read through this index, in customer-number order, a page at a time.
CREATE INDEX profiling_consent_marketing ON profiling_consent (customer_number)
    WHERE purpose = 'direct_marketing' AND state = 'granted';
-- ... each candidate checked against objections to processing through this one (few rows), not
-- by a walk of every customer's consent states.
CREATE INDEX profiling_consent_processing_objected ON profiling_consent (customer_number)
    WHERE purpose = 'processing' AND state = 'objected';
