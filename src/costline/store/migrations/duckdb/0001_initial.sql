-- costline initial schema for DuckDB.
-- Times are TIMESTAMPTZ (UTC instants); money is DECIMAL(38,12); JSON money amounts are decimal strings.
-- The runner creates schema_migrations itself and records this file's name there.

CREATE TABLE projects (
    id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    retention_days INTEGER
);

CREATE TABLE api_keys (
    public_key VARCHAR PRIMARY KEY,
    project_id VARCHAR NOT NULL REFERENCES projects (id),
    secret_hash VARCHAR NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE observations (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    trace_id VARCHAR NOT NULL,
    parent_id VARCHAR,
    type VARCHAR NOT NULL,
    name VARCHAR,
    start_time TIMESTAMPTZ NOT NULL,
    end_time TIMESTAMPTZ,
    completion_start_time TIMESTAMPTZ,
    model VARCHAR,
    resolved_model VARCHAR,
    provider VARCHAR,
    usage JSON NOT NULL,                -- {unit: int | "decimal string"}
    cost JSON NOT NULL,                 -- {component: "decimal string"}
    total_cost DECIMAL(38, 12),         -- NULL when unpriced, never 0 in its place
    currency VARCHAR NOT NULL,
    pricing_status VARCHAR,
    price_id VARCHAR,
    pricing_reason VARCHAR,
    provided_cost JSON,                 -- {component: "decimal string"} or NULL
    attributes JSON,
    user_id VARCHAR,
    session_id VARCHAR,
    tags VARCHAR[] NOT NULL,
    metadata JSON NOT NULL,
    environment VARCHAR NOT NULL,
    release VARCHAR,
    version VARCHAR,
    level VARCHAR NOT NULL,
    status_message VARCHAR,
    model_parameters JSON,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,  -- when this version of the row was written
    PRIMARY KEY (project_id, id)
);
-- DuckDB plans index scans only for single-column ART indexes (checked with EXPLAIN ANALYZE on 2.0): a
-- (project_id, trace_id) index would never be read, a trace_id one serves trace_observations. Time ranges
-- are served by row-group zone maps (rows arrive roughly in time order), so start_time has no ART index
-- (it would cost memory and write time for nothing).
CREATE INDEX observations_trace ON observations (trace_id);

CREATE TABLE traces (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    name VARCHAR,
    user_id VARCHAR,
    session_id VARCHAR,
    tags VARCHAR[] NOT NULL,
    metadata JSON NOT NULL,
    environment VARCHAR NOT NULL,
    release VARCHAR,
    version VARCHAR,
    public BOOLEAN NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE scores (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    value_numeric DECIMAL(38, 12),      -- exactly one of value_numeric / value_text is set
    value_text VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,
    trace_id VARCHAR,
    observation_id VARCHAR,
    session_id VARCHAR,
    data_type VARCHAR,
    comment VARCHAR,
    environment VARCHAR NOT NULL,
    metadata JSON NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (project_id, id),
    CHECK ((value_numeric IS NULL) <> (value_text IS NULL))
);

CREATE TABLE prices (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    entry JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE SEQUENCE audit_id_seq START 1;
CREATE TABLE audit (
    id BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
    "at" TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,
    details JSON NOT NULL
);
