-- Version 1: the state behind marketplace.Store.
--
-- Times are TEXT in the fixed-width UTC form 2006-01-02T15:04:05.000000000Z,
-- so that they sort and compare as strings with nanosecond precision; the
-- zero time.Time is 0001-01-01T00:00:00.000000000Z.

CREATE TABLE processed_events (
    event_id     TEXT NOT NULL PRIMARY KEY,
    processed_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- PruneProcessed deletes by age.
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

CREATE TABLE accounts (
    id              TEXT    NOT NULL PRIMARY KEY,
    signup_approved INTEGER NOT NULL,
    vendor_user_id  TEXT    NOT NULL,
    user_identity   TEXT    NOT NULL,
    update_time     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- No foreign key to accounts: an entitlement can arrive before its account
-- has signed up (it is then parked).
CREATE TABLE entitlements (
    id                 TEXT    NOT NULL PRIMARY KEY,
    account_id         TEXT    NOT NULL,
    product            TEXT    NOT NULL,
    plan               TEXT    NOT NULL,
    pending_plan       TEXT    NOT NULL,
    state              TEXT    NOT NULL,
    usage_reporting_id TEXT    NOT NULL,
    update_time        TEXT    NOT NULL,
    parked             INTEGER NOT NULL,
    parked_at          TEXT    NOT NULL,
    cancel_time        TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX entitlements_account_id ON entitlements (account_id);
CREATE INDEX entitlements_parked ON entitlements (id) WHERE parked <> 0;

-- AUTOINCREMENT: a sequence number is never reused, even after the newest
-- request is deleted, so a re-queued request always goes to the back.
CREATE TABLE approval_queue (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    entitlement_id TEXT NOT NULL,
    kind           TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    plan           TEXT NOT NULL,
    requested_at   TEXT NOT NULL,
    UNIQUE (entitlement_id, kind)
) STRICT;

CREATE TABLE poison_messages (
    id         INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    data       BLOB NOT NULL,
    at         TEXT NOT NULL
) STRICT;

CREATE INDEX poison_messages_at ON poison_messages (at, id);
