-- Which Marketplace (provider and Procurement endpoint) the
-- store holds the state of, recorded by the Processor on first use and
-- checked on every start (marketplace.OriginRecorder). One row at most.
CREATE TABLE marketplace_origin (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    provider_id TEXT NOT NULL,
    endpoint    TEXT NOT NULL
) STRICT;
