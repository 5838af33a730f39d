-- costline initial schema for PostgreSQL.
-- Times are TIMESTAMPTZ; money is NUMERIC(38,12); JSON money amounts are decimal strings.
-- The runner creates schema_migrations itself and records this file's name there.

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    retention_days INTEGER
);

CREATE TABLE api_keys (
    public_key TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    secret_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE observations (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    parent_id TEXT,
    type TEXT NOT NULL,
    name TEXT,
    start_time TIMESTAMPTZ NOT NULL,
    end_time TIMESTAMPTZ,
    completion_start_time TIMESTAMPTZ,
    model TEXT,
    resolved_model TEXT,
    provider TEXT,
    usage JSONB NOT NULL,               -- {unit: int | "decimal string"}
    cost JSONB NOT NULL,                -- {component: "decimal string"}
    total_cost NUMERIC(38, 12),         -- NULL when unpriced, never 0 in its place
    currency TEXT NOT NULL,
    pricing_status TEXT,
    price_id TEXT,
    pricing_reason TEXT,
    provided_cost JSONB,                -- {component: "decimal string"} or NULL
    attributes JSONB,
    user_id TEXT,
    session_id TEXT,
    tags TEXT[] NOT NULL,
    metadata JSONB NOT NULL,
    environment TEXT NOT NULL,
    release TEXT,
    version TEXT,
    level TEXT NOT NULL,
    status_message TEXT,
    model_parameters JSONB,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),  -- when this version of the row was written
    PRIMARY KEY (project_id, id)
);
-- (project_id, start_time, id) serves time ranges and the keyset order of iter_observations.
CREATE INDEX observations_project_start ON observations (project_id, start_time, id);
CREATE INDEX observations_project_trace ON observations (project_id, trace_id);
CREATE INDEX observations_start ON observations (start_time);

CREATE TABLE traces (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    name TEXT,
    user_id TEXT,
    session_id TEXT,
    tags TEXT[] NOT NULL,
    metadata JSONB NOT NULL,
    environment TEXT NOT NULL,
    release TEXT,
    version TEXT,
    public BOOLEAN NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id)
);
CREATE INDEX traces_project_timestamp ON traces (project_id, timestamp);

CREATE TABLE scores (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    value_numeric NUMERIC(38, 12),      -- exactly one of value_numeric / value_text is set
    value_text TEXT,
    timestamp TIMESTAMPTZ NOT NULL,
    trace_id TEXT,
    observation_id TEXT,
    session_id TEXT,
    data_type TEXT,
    comment TEXT,
    environment TEXT NOT NULL,
    metadata JSONB NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    CHECK ((value_numeric IS NULL) <> (value_text IS NULL))
);
CREATE INDEX scores_project_timestamp ON scores (project_id, timestamp);
CREATE INDEX scores_project_trace ON scores (project_id, trace_id);

CREATE TABLE prices (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    entry JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "at" TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    details JSONB NOT NULL
);
CREATE INDEX audit_kind ON audit (kind, id);
