-- Version 8: the orders of AI agent listings (agent.Store), each with the
-- OAuth client registered for it over DCR. The client secret is stored
-- sealed (AES-256-GCM, by package agent), never in plain text. The
-- primary key makes one of concurrent registrations of an order insert;
-- a client belongs to one order.
CREATE TABLE agent_orders (
    order_id           TEXT NOT NULL PRIMARY KEY,
    account_id         TEXT NOT NULL,
    entitlement_id     TEXT NOT NULL,
    usage_reporting_id TEXT NOT NULL,
    client_id          TEXT NOT NULL UNIQUE,
    redirect_uris      TEXT NOT NULL, -- JSON array of strings
    sealed_secret      BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    revoked_at         TEXT NOT NULL -- the zero time while the client is valid
) STRICT, WITHOUT ROWID;

-- ListOrders by account (the purge) and by entitlement (revocation).
CREATE INDEX agent_orders_account ON agent_orders (account_id, order_id);
CREATE INDEX agent_orders_entitlement ON agent_orders (entitlement_id, order_id);
