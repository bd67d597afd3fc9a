-- Version 2: the usage ledger behind usage.Ledger (usage reporting to
-- Service Control). The zero time (0001-01-01 00:00:00 UTC) means "none".

-- One row per registered entitlement. frontier is the start of the first
-- window not yet sealed. AddUsage holds FOR SHARE on the row and Seal FOR
-- UPDATE, so usage never lands in a window being sealed.
CREATE TABLE usage_consumers (
    entitlement_id     text COLLATE "C" PRIMARY KEY,
    usage_reporting_id text        NOT NULL,
    start_time         timestamptz NOT NULL,
    end_time           timestamptz NOT NULL,
    frontier           timestamptz NOT NULL,
    block_code         text        NOT NULL,
    block_detail       text        NOT NULL,
    block_since        timestamptz NOT NULL
);

CREATE INDEX usage_consumers_frontier ON usage_consumers (frontier, entitlement_id);

-- Aggregated usage not yet sealed: AddUsage adds to its row in one upsert.
CREATE TABLE usage_rows (
    entitlement_id text COLLATE "C" NOT NULL,
    window_start   timestamptz      NOT NULL,
    metric         text COLLATE "C" NOT NULL,
    labels         text COLLATE "C" NOT NULL,
    kind           smallint         NOT NULL,
    int_value      bigint           NOT NULL,
    double_value   double precision NOT NULL,
    PRIMARY KEY (entitlement_id, window_start, metric, labels)
);

CREATE INDEX usage_rows_window ON usage_rows (window_start);

-- Sealed windows: one Service Control operation each. Content columns never
-- change after the insert; state, reason, attempts, times and lease do.
-- metric_values is JSON text, written and read only by the store.
CREATE TABLE usage_windows (
    operation_id   text COLLATE "C" PRIMARY KEY,
    entitlement_id text COLLATE "C" NOT NULL,
    consumer_id    text        NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    labels         text        NOT NULL,
    metric_values  text        NOT NULL,
    state          text        NOT NULL,
    reason         text        NOT NULL,
    deadline       timestamptz NOT NULL,
    attempts       integer     NOT NULL,
    sealed_at      timestamptz NOT NULL,
    last_attempt   timestamptz NOT NULL,
    reported_at    timestamptz NOT NULL,
    lease_owner    text        NOT NULL,
    lease_until    timestamptz NOT NULL
);

CREATE INDEX usage_windows_order ON usage_windows (start_time, operation_id);
-- ClaimWindows scans the open windows whose lease has expired.
CREATE INDEX usage_windows_open ON usage_windows (start_time, operation_id) WHERE state IN ('pending', 'unknown');
CREATE INDEX usage_windows_entitlement ON usage_windows (entitlement_id, start_time);
