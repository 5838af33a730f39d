-- Budgets, alert rules, channels, reservations, user tiers, alert states and the delivery log.
-- Specs are the validated JSON shapes of docs/budgets.md and docs/alerts.md; money in them is decimal strings.

CREATE TABLE control_objects (
    project_id TEXT NOT NULL,
    kind TEXT NOT NULL,              -- budget | alert | channel
    id TEXT NOT NULL,
    spec JSONB NOT NULL,
    source TEXT NOT NULL,            -- api | cli | file:<path>
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, kind, id)
);

-- One row per (reservation, budget counter) it holds; live while expires_at is in the future.
CREATE TABLE budget_reservations (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    counter TEXT NOT NULL,
    amount NUMERIC(38, 12) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    details JSONB NOT NULL,
    PRIMARY KEY (project_id, id, counter)
);

CREATE TABLE user_tiers (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE alert_states (
    project_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    state JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, rule_id, subject)
);

CREATE TABLE alert_deliveries (
    project_id TEXT NOT NULL,
    id TEXT NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,
    rule_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    entry JSONB NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE INDEX budget_reservations_counter ON budget_reservations (project_id, counter, expires_at);
CREATE INDEX alert_deliveries_at ON alert_deliveries (project_id, "at");
