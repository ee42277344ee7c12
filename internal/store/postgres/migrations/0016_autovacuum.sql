-- The hot tables' autovacuum, tuned for a queue (docs/postgres.md,
-- "Autovacuum").
--
-- Every delivery is written three times or more in its first seconds
-- (insert, claim, complete) and then never again: dead row versions pile
-- up at the rate of the traffic while the live set stays small. The
-- defaults (vacuum at 20% dead rows) let the due index and the table
-- bloat for minutes between vacuums under load, and every claim scans
-- the dead entries of deliveries_due. Vacuum after 2% (or 1,000 rows),
-- without the cost delay that makes it fall behind, and leave room in
-- each page (fillfactor 80) so an update can stay on its page.
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);

-- A message's status changes once or twice after its insert.
ALTER TABLE messages SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 90
);

-- Attempts are only inserted (and purged): vacuum keeps the visibility
-- map fresh for the index-only reads of a message's history.
ALTER TABLE attempts SET (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);
