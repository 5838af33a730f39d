-- Hourly rollups for the dashboard's sums and counts (store/rollup_sql.py).
-- rollup_user_hours: exact sums per (project, UTC hour, model, provider, environment, attributed user, type),
-- rollup_hours: the same without the user (far fewer rows, for questions that do not read users); a
-- (project, hour) in rollup_dirty is recomputed from raw rows before a rollup answers for it (until then raw
-- rows answer for that hour); a trace in rollup_dirty_traces changed its user, so the hours of its
-- observations are made dirty before a query that reads users. Writes fill both dirty tables in their
-- own transaction. Existing data starts dirty: the first query rolls it up.
CREATE TABLE rollup_hours (
    project_id VARCHAR NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    model VARCHAR,
    provider VARCHAR,
    environment VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    cost DECIMAL(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
CREATE TABLE rollup_user_hours (
    project_id VARCHAR NOT NULL,
    hour TIMESTAMPTZ NOT NULL,
    model VARCHAR,
    provider VARCHAR,
    environment VARCHAR NOT NULL,
    user_id VARCHAR,
    type VARCHAR NOT NULL,
    cost DECIMAL(38, 12),
    n BIGINT NOT NULL,
    unpriced BIGINT NOT NULL
);
CREATE TABLE rollup_dirty (project_id VARCHAR NOT NULL, hour TIMESTAMPTZ NOT NULL);
CREATE TABLE rollup_dirty_traces (project_id VARCHAR NOT NULL, trace_id VARCHAR NOT NULL);
INSERT INTO rollup_dirty
SELECT DISTINCT project_id, to_timestamp((epoch_us(start_time) // 3600000000) * 3600) FROM observations;
