-- Retention of Zipkin's traces in its MySQL/MariaDB storage (which has no TTL of its own).
-- Applied to the `zipkin` database after Zipkin's schema (mysql.sql, from the Zipkin jar) by
-- deploy/local/mariadb.sh at every start and by the compose file's `zipkin-db` job; safe to repeat.
-- The caller sets @retention_days first (LAMPO_TRACE_RETENTION_DAYS, default 100: longer than the
-- GDPR deadline of one month extended by two more, so a request's trace opens until it is answered).
--
-- A trace is deleted whole, once its newest span is older than the period; a trace that still
-- gets spans is kept with all its spans. The server's event scheduler runs the pruning daily
-- (event_scheduler=ON), and once whenever this file is applied: nobody has to remember it.

CREATE TABLE IF NOT EXISTS lampo_trace_retention (
  id TINYINT NOT NULL PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  days INT NOT NULL CHECK (days > 0)
) ENGINE=InnoDB;

REPLACE INTO lampo_trace_retention (id, days) VALUES (1, @retention_days);

DROP PROCEDURE IF EXISTS lampo_prune_traces;
DELIMITER //
CREATE PROCEDURE lampo_prune_traces()
  MODIFIES SQL DATA
  COMMENT 'Deletes the traces whose newest span is older than lampo_trace_retention.days'
BEGIN
  DECLARE period INT;
  DECLARE cutoff BIGINT;  -- epoch microseconds, as zipkin_spans.start_ts
  SELECT days INTO period FROM lampo_trace_retention WHERE id = 1;
  SET cutoff = (UNIX_TIMESTAMP() - period * 86400) * 1000000;
  DROP TEMPORARY TABLE IF EXISTS lampo_old_traces;
  CREATE TEMPORARY TABLE lampo_old_traces (
    trace_id_high BIGINT NOT NULL, trace_id BIGINT NOT NULL, PRIMARY KEY (trace_id_high, trace_id)
  ) ENGINE=MEMORY;
  -- candidates through the start_ts index, minus the traces with a newer span
  INSERT IGNORE INTO lampo_old_traces
    SELECT o.trace_id_high, o.trace_id FROM zipkin_spans o
     WHERE o.start_ts < cutoff
       AND NOT EXISTS (SELECT 1 FROM zipkin_spans n
                        WHERE n.trace_id_high = o.trace_id_high AND n.trace_id = o.trace_id
                          AND n.start_ts >= cutoff);
  DELETE a FROM zipkin_annotations a
    JOIN lampo_old_traces t ON a.trace_id_high = t.trace_id_high AND a.trace_id = t.trace_id;
  DELETE s FROM zipkin_spans s
    JOIN lampo_old_traces t ON s.trace_id_high = t.trace_id_high AND s.trace_id = t.trace_id;
  DELETE FROM zipkin_dependencies WHERE `day` < CURRENT_DATE - INTERVAL period DAY;
  DROP TEMPORARY TABLE lampo_old_traces;
END //
DELIMITER ;

CREATE OR REPLACE EVENT lampo_trace_retention_daily
  ON SCHEDULE EVERY 1 DAY STARTS CURRENT_TIMESTAMP
  ON COMPLETION PRESERVE ENABLE
  COMMENT 'Zipkin trace retention: CALL lampo_prune_traces() daily'
  DO CALL lampo_prune_traces();
