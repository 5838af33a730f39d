-- Key lifecycle: when a key was last used (written at most once a minute per key and server) and when it stops
-- working (revoked now, or later when a rotation leaves the old key a grace period). NULL: never / not revoked.
CREATE TABLE api_key_state (
    public_key TEXT PRIMARY KEY REFERENCES api_keys (public_key),
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
