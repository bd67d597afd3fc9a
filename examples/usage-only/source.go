package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// apiCalls is the -source mode: your product already meters every call in
// its own table, and the reporter reads the totals from there (a
// usage.Source) when a window is due, instead of your request path calling
// Record. Replace it with a query on your own table or warehouse.
//
// The reporter persists the totals it read with the sealed window, so a
// crash or a retry sends the same numbers under the same operation id; rows
// written for a window after it was sealed (its end plus the seal grace)
// are not billed, and rows after the entitlement's End never are.
type apiCalls struct {
	db *sql.DB
}

const apiCallsSchema = `
CREATE TABLE IF NOT EXISTS api_calls (
	entitlement_id TEXT    NOT NULL,
	metric         TEXT    NOT NULL,
	units          INTEGER NOT NULL CHECK (units >= 0),
	at_us          INTEGER NOT NULL -- when the call happened, Unix microseconds
);
CREATE INDEX IF NOT EXISTS api_calls_by_time ON api_calls (entitlement_id, at_us);`

func openAPICalls(ctx context.Context, path string) (*apiCalls, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, fmt.Errorf("open the api_calls database %q: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, apiCallsSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create the api_calls table in %q: %w", path, err)
	}
	return &apiCalls{db: db}, nil
}

// add is your request path's own metering: one row per call.
func (a *apiCalls) add(ctx context.Context, entitlementID, metric string, units int64, at time.Time) error {
	_, err := a.db.ExecContext(ctx, `INSERT INTO api_calls (entitlement_id, metric, units, at_us) VALUES (?, ?, ?, ?)`,
		entitlementID, metric, units, at.UnixMicro())
	return err
}

// Totals implements usage.Source: the table summed over the window.
func (a *apiCalls) Totals(ctx context.Context, q usage.SourceQuery) ([]usage.Total, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT metric, SUM(units) FROM api_calls
		WHERE entitlement_id = ? AND at_us >= ? AND at_us < ? GROUP BY metric`,
		q.EntitlementID, q.Start.UnixMicro(), q.End.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sum api_calls: %w", err)
	}
	defer rows.Close()
	var out []usage.Total
	for rows.Next() {
		var t usage.Total
		if err := rows.Scan(&t.Metric, &t.Int64); err != nil {
			return nil, fmt.Errorf("sum api_calls: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// total is the table's total for an entitlement and metric, for the test
// and for an operator reconciling what was billed.
func (a *apiCalls) total(ctx context.Context, entitlementID, metric string) (int64, error) {
	var n int64
	err := a.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(units), 0) FROM api_calls WHERE entitlement_id = ? AND metric = ?`,
		entitlementID, metric).Scan(&n)
	return n, err
}

func (a *apiCalls) Close() error { return a.db.Close() }
