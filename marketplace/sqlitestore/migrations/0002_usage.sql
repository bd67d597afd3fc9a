-- Version 2: the usage ledger behind usage.Ledger (usage reporting to
-- Service Control). Times use the fixed-width UTC text form of version 1;
-- the zero time (0001-01-01T00:00:00.000000000Z) means "none".

-- One row per registered entitlement. frontier is the start of the first
-- window not yet sealed.
CREATE TABLE usage_consumers (
    entitlement_id     TEXT NOT NULL PRIMARY KEY,
    usage_reporting_id TEXT NOT NULL,
    start_time         TEXT NOT NULL,
    end_time           TEXT NOT NULL,
    frontier           TEXT NOT NULL,
    block_code         TEXT NOT NULL,
    block_detail       TEXT NOT NULL,
    block_since        TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_consumers_frontier ON usage_consumers (frontier);

-- Aggregated usage not yet sealed: Record adds to its row in one upsert.
CREATE TABLE usage_rows (
    entitlement_id TEXT    NOT NULL,
    window_start   TEXT    NOT NULL,
    metric         TEXT    NOT NULL,
    labels         TEXT    NOT NULL,
    kind           INTEGER NOT NULL,
    int_value      INTEGER NOT NULL,
    double_value   REAL    NOT NULL,
    PRIMARY KEY (entitlement_id, window_start, metric, labels)
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_rows_window ON usage_rows (window_start);

-- Sealed windows: one Service Control operation each. Content columns never
-- change after the insert; state, reason, attempts, times and lease do.
CREATE TABLE usage_windows (
    operation_id   TEXT    NOT NULL PRIMARY KEY,
    entitlement_id TEXT    NOT NULL,
    consumer_id    TEXT    NOT NULL,
    start_time     TEXT    NOT NULL,
    end_time       TEXT    NOT NULL,
    labels         TEXT    NOT NULL,
    metric_values  TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    deadline       TEXT    NOT NULL,
    attempts       INTEGER NOT NULL,
    sealed_at      TEXT    NOT NULL,
    last_attempt   TEXT    NOT NULL,
    reported_at    TEXT    NOT NULL,
    lease_owner    TEXT    NOT NULL,
    lease_until    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_windows_order ON usage_windows (start_time, operation_id);
CREATE INDEX usage_windows_open ON usage_windows (lease_until) WHERE state IN ('pending', 'unknown');
CREATE INDEX usage_windows_entitlement ON usage_windows (entitlement_id, start_time);
