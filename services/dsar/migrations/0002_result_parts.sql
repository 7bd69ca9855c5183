-- Parts of a sealed access result too large for one privacy.ack, held until the last arrives.
-- Sealed to the request's key: unreadable without it; deleted once joined.
CREATE TABLE result_parts (
    task_id text    NOT NULL,
    part    integer NOT NULL,
    data    text    NOT NULL,
    PRIMARY KEY (task_id, part)
);
