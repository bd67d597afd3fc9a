-- Version 7: the history of entitlements (marketplace.Transition), written
-- by the transaction that commits each change and deleted with the account
-- (DeleteAccount). AUTOINCREMENT: a Seq is never reused, so the history
-- keeps its order after deletions.
CREATE TABLE entitlement_transitions (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    entitlement_id TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    at             TEXT NOT NULL,
    change         TEXT NOT NULL,
    from_state     TEXT NOT NULL,
    to_state       TEXT NOT NULL,
    from_plan      TEXT NOT NULL,
    to_plan        TEXT NOT NULL,
    source         TEXT NOT NULL,
    event_id       TEXT NOT NULL
) STRICT;

CREATE INDEX entitlement_transitions_account ON entitlement_transitions (account_id, seq);
CREATE INDEX entitlement_transitions_entitlement ON entitlement_transitions (entitlement_id, seq);
