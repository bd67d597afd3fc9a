-- Version 1: the state behind marketplace.Store.
--
-- The store runs this with search_path set to its schema, so names here are
-- unqualified. Identifiers use the "C" collation: lists are sorted by byte
-- order, as in the other stores, whatever the database's locale. Times are
-- timestamptz (microseconds); the zero time.Time is 0001-01-01 00:00:00 UTC.

CREATE TABLE processed_events (
    event_id     text COLLATE "C" PRIMARY KEY,
    processed_at timestamptz NOT NULL
);

-- PruneProcessed deletes by age.
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

CREATE TABLE accounts (
    id              text COLLATE "C" PRIMARY KEY,
    signup_approved boolean     NOT NULL,
    vendor_user_id  text        NOT NULL,
    user_identity   text        NOT NULL,
    update_time     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);

-- No foreign key to accounts: an entitlement can arrive before its account
-- has signed up (it is then parked).
CREATE TABLE entitlements (
    id                 text COLLATE "C" PRIMARY KEY,
    account_id         text COLLATE "C" NOT NULL,
    product            text        NOT NULL,
    plan               text        NOT NULL,
    pending_plan       text        NOT NULL,
    state              text        NOT NULL,
    usage_reporting_id text        NOT NULL,
    update_time        timestamptz NOT NULL,
    parked             boolean     NOT NULL,
    parked_at          timestamptz NOT NULL,
    cancel_time        timestamptz NOT NULL
);

CREATE INDEX entitlements_account_id ON entitlements (account_id);
CREATE INDEX entitlements_parked ON entitlements (id) WHERE parked;

-- An identity column never hands out a number twice, even after the newest
-- request is deleted, so a re-queued request always goes to the back.
CREATE TABLE approval_queue (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entitlement_id text COLLATE "C" NOT NULL,
    kind           text COLLATE "C" NOT NULL,
    account_id     text        NOT NULL,
    plan           text        NOT NULL,
    requested_at   timestamptz NOT NULL,
    UNIQUE (entitlement_id, kind)
);

CREATE TABLE poison_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text        NOT NULL,
    event_id   text        NOT NULL,
    reason     text        NOT NULL,
    data       bytea       NOT NULL,
    at         timestamptz NOT NULL
);

CREATE INDEX poison_messages_at ON poison_messages (at DESC, id DESC);
