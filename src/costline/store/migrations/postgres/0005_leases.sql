-- Named leases: the one server of several that runs a periodic job (the alert pass) holds its lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL
);
