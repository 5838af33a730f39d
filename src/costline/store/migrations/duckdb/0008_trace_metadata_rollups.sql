-- Rollups for cost per trace and cost by metadata key (store/rollup_sql.py).
-- rollup_trace_hours: per (project, UTC hour, trace) the exact sum of total_cost, the row count and the
-- unpriced count; ``single``: the trace had rows in no other hour when this row was computed (later rows of it
-- elsewhere dirty their own hours, whose refresh clears the flag on all of the trace's rows).
-- rollup_meta_keys: metadata keys rolled up per project (registered by the first query grouping or filtering
-- by one); rollup_meta_hours: per (project, UTC hour, key, value) the same sums, the value being the
-- observation's, else its trace's (as the raw query attributes it).
-- Every hour starts dirty again so that the first query fills the new tables.
CREATE TABLE rollup_trace_hours (
    project_id VARCHAR NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    trace_id VARCHAR NOT NULL,
    cost DECIMAL(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL,
    single BOOLEAN NOT NULL
);
CREATE TABLE rollup_meta_keys (project_id VARCHAR NOT NULL, key VARCHAR NOT NULL);
CREATE TABLE rollup_meta_hours (
    project_id VARCHAR NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    key VARCHAR NOT NULL,
    value VARCHAR,
    cost DECIMAL(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
INSERT INTO rollup_dirty
SELECT DISTINCT project_id, to_timestamp((epoch_us(start_time) // 3600000000) * 3600) FROM observations;
