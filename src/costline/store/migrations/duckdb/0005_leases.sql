-- Named leases: the one server of several that runs a periodic job (the alert pass) holds its lease.
CREATE TABLE leases (
    name VARCHAR PRIMARY KEY,
    holder VARCHAR NOT NULL,
    until TIMESTAMPTZ NOT NULL
);
