-- Rollups for cost per trace and cost by metadata key (store/rollup_sql.py): see the DuckDB migration.
CREATE TABLE rollup_trace_hours (
    project_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    trace_id TEXT NOT NULL,
    cost NUMERIC(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL,
    single BOOLEAN NOT NULL
);
CREATE INDEX rollup_trace_hours_project_hour ON rollup_trace_hours (project_id, hour);
CREATE INDEX rollup_trace_hours_project_trace ON rollup_trace_hours (project_id, trace_id);
CREATE TABLE rollup_meta_keys (project_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (project_id, key));
CREATE TABLE rollup_meta_hours (
    project_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    cost NUMERIC(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
CREATE INDEX rollup_meta_hours_project_key_hour ON rollup_meta_hours (project_id, key, hour);
INSERT INTO rollup_dirty
SELECT DISTINCT project_id, date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM observations;
