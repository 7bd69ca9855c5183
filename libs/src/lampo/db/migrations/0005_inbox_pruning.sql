-- Inbox rows are pruned once no topic can deliver their event again (lampo.messaging.inbox.prune,
-- the "inbox pruning" job of every service): found by age through this index, never by a scan of
-- the whole inbox.
CREATE INDEX inbox_handled_at ON inbox (handled_at);
