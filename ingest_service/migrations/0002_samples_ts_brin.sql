-- Retention is the only reader of an index on ts alone, and a btree entry per sample costs
-- every insert a second index descent. Samples arrive nearly in time order, so a BRIN index
-- (one summary per range of pages) finds the old ones about as well at a small fraction of the
-- upkeep.
DROP INDEX samples_ts_idx;
CREATE INDEX samples_ts_brin ON samples USING brin (ts);
