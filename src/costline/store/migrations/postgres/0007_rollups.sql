-- Hourly rollups for the dashboard's sums and counts (store/rollup_sql.py): see the DuckDB migration.
CREATE TABLE rollup_hours (
    project_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    model TEXT,
    provider TEXT,
    environment TEXT NOT NULL,
    type TEXT NOT NULL,
    cost NUMERIC(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
CREATE TABLE rollup_user_hours (
    project_id TEXT NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    model TEXT,
    provider TEXT,
    environment TEXT NOT NULL,
    user_id TEXT,
    type TEXT NOT NULL,
    cost NUMERIC(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
CREATE INDEX rollup_hours_project_hour ON rollup_hours (project_id, hour);
CREATE INDEX rollup_user_hours_project_hour ON rollup_user_hours (project_id, hour);
CREATE TABLE rollup_dirty (project_id TEXT NOT NULL, hour TIMESTAMPTZ NOT NULL);
CREATE INDEX rollup_dirty_project_hour ON rollup_dirty (project_id, hour);
CREATE TABLE rollup_dirty_traces (project_id TEXT NOT NULL, trace_id TEXT NOT NULL);
INSERT INTO rollup_dirty
SELECT DISTINCT project_id, date_trunc('hour', start_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM observations;
