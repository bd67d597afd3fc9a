-- Version 7: the history of entitlements (marketplace.Transition), written
-- by the transaction that commits each change and deleted with the account
-- (DeleteAccount). An identity column never hands out a number twice.
-- Concurrent transactions may commit their numbers out of order; the
-- processor's key locks order the transitions of one entitlement.
CREATE TABLE entitlement_transitions (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entitlement_id text COLLATE "C" NOT NULL,
    account_id     text COLLATE "C" NOT NULL,
    at             timestamptz NOT NULL,
    change         text        NOT NULL,
    from_state     text        NOT NULL,
    to_state       text        NOT NULL,
    from_plan      text        NOT NULL,
    to_plan        text        NOT NULL,
    source         text        NOT NULL,
    event_id       text        NOT NULL
);

CREATE INDEX entitlement_transitions_account ON entitlement_transitions (account_id, seq);
CREATE INDEX entitlement_transitions_entitlement ON entitlement_transitions (entitlement_id, seq);
