-- Version 8: the orders of AI agent listings (agent.Store), each with the
-- OAuth client registered for it over DCR. The client secret is stored
-- sealed (AES-256-GCM, by package agent), never in plain text. The
-- primary key makes one of concurrent registrations of an order insert;
-- a client belongs to one order.
CREATE TABLE agent_orders (
    order_id           text COLLATE "C" PRIMARY KEY,
    account_id         text COLLATE "C" NOT NULL,
    entitlement_id     text COLLATE "C" NOT NULL,
    usage_reporting_id text        NOT NULL,
    client_id          text COLLATE "C" NOT NULL UNIQUE,
    redirect_uris      text[]      NOT NULL,
    sealed_secret      bytea       NOT NULL,
    created_at         timestamptz NOT NULL,
    revoked_at         timestamptz -- NULL while the client is valid
);

-- ListOrders by account (the purge) and by entitlement (revocation).
CREATE INDEX agent_orders_account ON agent_orders (account_id, order_id);
CREATE INDEX agent_orders_entitlement ON agent_orders (entitlement_id, order_id);
