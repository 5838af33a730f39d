-- Budgets, alert rules, channels, reservations, user tiers, alert states and the delivery log.
-- Specs are the validated JSON shapes of docs/budgets.md and docs/alerts.md; money in them is decimal strings.

CREATE TABLE control_objects (
    project_id VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,              -- budget | alert | channel
    id VARCHAR NOT NULL,
    spec JSON NOT NULL,
    source VARCHAR NOT NULL,            -- api | cli | file:<path>
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, kind, id)
);

-- One row per (reservation, budget counter) it holds; live while expires_at is in the future.
CREATE TABLE budget_reservations (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    counter VARCHAR NOT NULL,
    amount DECIMAL(38, 12) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    details JSON NOT NULL,
    PRIMARY KEY (project_id, id, counter)
);

CREATE TABLE user_tiers (
    project_id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

CREATE TABLE alert_states (
    project_id VARCHAR NOT NULL,
    rule_id VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    state JSON NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, rule_id, subject)
);

CREATE TABLE alert_deliveries (
    project_id VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    "at" TIMESTAMPTZ NOT NULL,
    rule_id VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    entry JSON NOT NULL,
    PRIMARY KEY (project_id, id)
);
