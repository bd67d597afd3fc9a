package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// The usage ledger (ledger.Ledger) lives in the same file and goes through
// the same writer as the rest of the store, so every ledger method is one
// transaction of the group commit: concurrent Record calls share commits.

var _ ledger.Ledger = (*Store)(nil)

// zeroTime is how the zero time.Time is stored.
const zeroTime = "0001-01-01T00:00:00.000000000Z"

const windowColumns = "operation_id, entitlement_id, consumer_id, start_time, end_time, labels, metric_values, state, reason," +
	" deadline, attempts, sealed_at, last_attempt, reported_at, lease_owner, lease_until, lease_token"

const (
	sqlPutConsumer = "INSERT INTO usage_consumers (entitlement_id, usage_reporting_id, start_time, end_time, frontier, block_code, block_detail, block_since)" +
		" VALUES (?, ?, ?, ?, ?, '', '', '" + zeroTime + "')" +
		" ON CONFLICT (entitlement_id) DO UPDATE SET usage_reporting_id = excluded.usage_reporting_id," +
		" start_time = excluded.start_time, end_time = excluded.end_time"
	consumerColumns = "entitlement_id, usage_reporting_id, start_time, end_time, frontier, block_code, block_detail, block_since"
	sqlGetConsumer  = "SELECT " + consumerColumns + " FROM usage_consumers WHERE entitlement_id = ?"
	sqlSetBlock     = "UPDATE usage_consumers SET block_code = ?, block_detail = ?, block_since = ? WHERE entitlement_id = ?"
	// One statement on the hot path: the consumer's checks and the
	// aggregation. No row comes back when a check fails; addUsageWhy then
	// says which.
	sqlAddUsage = "INSERT INTO usage_rows (entitlement_id, window_start, metric, labels, kind, int_value, double_value)" +
		" SELECT c.entitlement_id, max(?2, c.frontier), ?3, ?4, ?5, ?6, ?7 FROM usage_consumers c" +
		" WHERE c.entitlement_id = ?1" +
		" AND (c.start_time = '" + zeroTime + "' OR ?8 >= c.start_time)" +
		" AND (c.end_time = '" + zeroTime + "' OR (?8 < c.end_time AND max(?2, c.frontier) < c.end_time))" +
		" ON CONFLICT (entitlement_id, window_start, metric, labels) DO UPDATE SET" +
		" int_value = int_value + excluded.int_value, double_value = double_value + excluded.double_value" +
		" RETURNING window_start"
	// ?3 is SealParams.Ended; the zero time selects no ended consumer,
	// since only a zero end_time is not after it.
	sqlSealPick = "SELECT entitlement_id FROM usage_consumers c" +
		" WHERE (frontier < ?1 AND (end_time = '" + zeroTime + "' OR frontier < end_time))" +
		" OR entitlement_id IN (SELECT entitlement_id FROM usage_rows WHERE window_start < ?1)" +
		" OR (end_time <> '" + zeroTime + "' AND end_time <= ?3 AND (frontier < end_time" +
		" OR EXISTS (SELECT 1 FROM usage_rows u WHERE u.entitlement_id = c.entitlement_id)))" +
		" ORDER BY frontier, entitlement_id LIMIT ?2"
	// ?3 is true for an ended consumer: all its rows are sealed.
	sqlSealRows = "SELECT window_start, metric, labels, kind, int_value, double_value FROM usage_rows" +
		" WHERE entitlement_id = ?1 AND (?3 OR window_start < ?2) ORDER BY window_start, metric, labels"
	sqlSealDelete   = "DELETE FROM usage_rows WHERE entitlement_id = ?1 AND (?3 OR window_start < ?2)"
	sqlSetFrontier  = "UPDATE usage_consumers SET frontier = ? WHERE entitlement_id = ?"
	sqlInsertWindow = "INSERT INTO usage_windows (" + windowColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" +
		" ON CONFLICT (operation_id) DO NOTHING"
	sqlClaim = "UPDATE usage_windows SET lease_owner = ?1, lease_until = ?2, lease_token = lease_token + 1 WHERE operation_id IN (" +
		"SELECT operation_id FROM usage_windows WHERE state IN ('pending', 'unknown') AND lease_until <= ?3" +
		" ORDER BY start_time, operation_id LIMIT ?4) RETURNING " + windowColumns
	// An override (?8 = '') applies unconditionally and fences the lease
	// holder out; an owner's update applies only under its own claim.
	sqlUpdateWindow = "UPDATE usage_windows SET state = ?1, reason = ?2, attempts = ?3, last_attempt = ?4, reported_at = ?5, lease_until = ?6," +
		" lease_token = lease_token + (?8 = '')" +
		" WHERE operation_id = ?7 AND (?8 = '' OR (lease_owner = ?8 AND lease_token = ?9))"
	sqlPruneWindows = "DELETE FROM usage_windows WHERE state IN ('reported', 'rejected') AND sealed_at < ?"
)

// ledgerStmt returns the prepared statement for query, preparing it on
// first use. Only the holder of a writer turn calls it, so the map needs no
// lock: the writer's channel hand-offs order every access.
func (t *tx) ledgerStmt(query string) (*sql.Stmt, error) {
	if st, ok := t.s.ledgerStmts[query]; ok {
		return st, nil
	}
	st, err := t.s.conn.PrepareContext(stmtCtx, query)
	if err != nil {
		return nil, err
	}
	if t.s.ledgerStmts == nil {
		t.s.ledgerStmts = map[string]*sql.Stmt{}
	}
	t.s.ledgerStmts[query] = st
	return st, nil
}

func (t *tx) ledgerExec(query string, args ...any) (sql.Result, error) {
	st, err := t.ledgerStmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(stmtCtx, args...)
}

func (t *tx) ledgerQuery(query string, args ...any) (*sql.Rows, error) {
	st, err := t.ledgerStmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(stmtCtx, args...)
}

// ledgerTx runs fn as one store transaction (a turn of the group commit).
func (s *Store) ledgerTx(ctx context.Context, op string, fn func(t *tx) error, ids ...string) error {
	for _, id := range ids {
		if id == "" {
			return fmt.Errorf("sqlitestore: %s: empty id: %w", op, ledger.ErrInvalid)
		}
	}
	return s.InTx(ctx, func(ctx context.Context, mtx marketplace.Tx) error {
		t := mtx.(*tx)
		if err := t.enter(ctx, op); err != nil {
			return err
		}
		defer t.mu.Unlock()
		return fn(t)
	})
}

// PutConsumer implements ledger.Ledger.
func (s *Store) PutConsumer(ctx context.Context, c ledger.Consumer, frontier time.Time) error {
	ts, err := encodeTimes(c.Start, c.End, frontier)
	if err != nil {
		return fmt.Errorf("sqlitestore: put consumer %q: %w", c.EntitlementID, err)
	}
	return s.ledgerTx(ctx, "put consumer", func(t *tx) error {
		if _, err := t.ledgerExec(sqlPutConsumer, c.EntitlementID, c.UsageReportingID, ts[0], ts[1], ts[2]); err != nil {
			return fmt.Errorf("sqlitestore: put consumer %q: %w", c.EntitlementID, interpretError(err))
		}
		return nil
	}, c.EntitlementID)
}

func scanConsumer(row scanner) (ledger.ConsumerState, error) {
	var c ledger.ConsumerState
	var start, end, frontier, since string
	if err := row.Scan(&c.EntitlementID, &c.UsageReportingID, &start, &end, &frontier, &c.Block.Code, &c.Block.Detail, &since); err != nil {
		return c, err
	}
	var err error
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&c.Start, start}, {&c.End, end}, {&c.Frontier, frontier}, {&c.Block.Since, since}} {
		if *f.dst, err = decodeTime(f.src); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (t *tx) getConsumer(id string) (ledger.ConsumerState, error) {
	rows, err := t.ledgerQuery(sqlGetConsumer, id)
	if err != nil {
		return ledger.ConsumerState{}, err
	}
	cs, err := collect(rows, scanConsumer)
	if err != nil {
		return ledger.ConsumerState{}, err
	}
	if len(cs) == 0 {
		return ledger.ConsumerState{}, ledger.ErrUnknownConsumer
	}
	return cs[0], nil
}

// ListConsumers implements ledger.Ledger.
func (s *Store) ListConsumers(ctx context.Context, q ledger.ConsumerQuery) ([]ledger.ConsumerState, error) {
	query := "SELECT " + consumerColumns + " FROM usage_consumers"
	if q.BlockedOnly {
		query += " WHERE block_code <> ''"
	}
	query += " ORDER BY entitlement_id"
	var out []ledger.ConsumerState
	err := s.ledgerTx(ctx, "list consumers", func(t *tx) error {
		rows, err := t.ledgerQuery(query)
		if err != nil {
			return fmt.Errorf("sqlitestore: list consumers: %w", interpretError(err))
		}
		if out, err = collect(rows, scanConsumer); err != nil {
			return fmt.Errorf("sqlitestore: list consumers: %w", interpretError(err))
		}
		return nil
	})
	return out, err
}

// GetConsumer implements ledger.Ledger.
func (s *Store) GetConsumer(ctx context.Context, entitlementID string) (ledger.ConsumerState, error) {
	var c ledger.ConsumerState
	err := s.ledgerTx(ctx, "get consumer", func(t *tx) error {
		var err error
		if c, err = t.getConsumer(entitlementID); err != nil {
			return fmt.Errorf("sqlitestore: get consumer %q: %w", entitlementID, interpretError(err))
		}
		return nil
	}, entitlementID)
	return c, err
}

// SetBlock implements ledger.Ledger.
func (s *Store) SetBlock(ctx context.Context, entitlementID string, b ledger.Block) error {
	since, err := encodeTime(b.Since)
	if err != nil {
		return fmt.Errorf("sqlitestore: set block of %q: %w", entitlementID, err)
	}
	return s.ledgerTx(ctx, "set block", func(t *tx) error {
		res, err := t.ledgerExec(sqlSetBlock, b.Code, b.Detail, since, entitlementID)
		if err != nil {
			return fmt.Errorf("sqlitestore: set block of %q: %w", entitlementID, interpretError(err))
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("sqlitestore: set block of %q: %w", entitlementID, cmp.Or(err, ledger.ErrUnknownConsumer))
		}
		return nil
	}, entitlementID)
}

// AddUsage implements ledger.Ledger. Concurrent calls are combined: the first
// caller to find no batch running takes every call waiting and runs them as
// one transaction turn of the group commit (one savepoint, one statement per
// call), so that a usage record costs one statement rather than a whole
// turn. A call whose checks fail gets its own error; the others commit.
func (s *Store) AddUsage(ctx context.Context, u ledger.Usage) (time.Time, error) {
	if u.EntitlementID == "" {
		return time.Time{}, fmt.Errorf("sqlitestore: add usage: empty id: %w", ledger.ErrInvalid)
	}
	ts, err := encodeTimes(u.Bucket, u.At)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlitestore: add usage for %q: %w", u.EntitlementID, err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	req := &addRequest{u: u, window: ts[0], at: ts[1], done: make(chan addResult, 1)}
	a := &s.adds
	a.mu.Lock()
	a.pending = append(a.pending, req)
	lead := !a.running
	a.running = true
	a.mu.Unlock()
	// Once queued, the call is waited for even if ctx ends: it may commit,
	// and reporting a committed record as failed would invite a retry that
	// bills it twice.
	for {
		if lead {
			s.runAdds(ctx)
			lead = false
		}
		res := <-req.done
		if res.lead {
			lead = true
			continue
		}
		return res.window, res.err
	}
}

// maxAddBatch bounds how many AddUsage calls share one turn.
const maxAddBatch = 512

type addCombiner struct {
	mu      sync.Mutex
	pending []*addRequest
	prev    int  // size of the last batch
	running bool // a caller is running a batch
}

type addRequest struct {
	u          ledger.Usage
	window, at string
	done       chan addResult // buffered (1): receives exactly one result
}

type addResult struct {
	window time.Time
	err    error
	lead   bool // no result yet: run the next batch
}

// runAdds runs one batch of waiting AddUsage calls, then hands the lead to
// a waiting caller, if any.
func (s *Store) runAdds(ctx context.Context) {
	a := &s.adds
	// The callers the previous batch released are on their way back with
	// their next record; without waiting for them, batches alternate
	// between one caller and the rest, and each costs a whole fsync. As in
	// the writer, yield a few times (microseconds, never a sleep) while the
	// batch is smaller than the last one.
	a.mu.Lock()
	for yields := 0; len(a.pending) < min(a.prev, maxAddBatch) && yields < maxYields; yields++ {
		a.mu.Unlock()
		runtime.Gosched()
		a.mu.Lock()
	}
	n := min(len(a.pending), maxAddBatch)
	a.prev = n
	batch := a.pending[:n:n]
	a.pending = a.pending[n:]
	a.mu.Unlock()

	results := make([]addResult, len(batch))
	// The batch carries other callers' records: the leader's ctx must not
	// cancel it.
	err := s.ledgerTx(context.WithoutCancel(ctx), "add usage", func(t *tx) error {
		for i, r := range batch {
			w, err := t.addUsage(r)
			if err != nil && !errors.Is(err, ledger.ErrBeforeStart) && !errors.Is(err, ledger.ErrAfterEnd) &&
				!errors.Is(err, ledger.ErrWindowSealed) && !errors.Is(err, ledger.ErrUnknownConsumer) {
				return err // a database error: fail the whole batch, keep nothing
			}
			results[i] = addResult{window: w, err: err}
		}
		return nil
	})
	for i, r := range batch {
		if err != nil {
			results[i] = addResult{err: err}
		}
		r.done <- results[i]
	}

	a.mu.Lock()
	if len(a.pending) > 0 {
		next := a.pending[0]
		a.mu.Unlock()
		next.done <- addResult{lead: true}
		return
	}
	a.running = false
	a.mu.Unlock()
}

func (t *tx) addUsage(r *addRequest) (time.Time, error) {
	u := r.u
	rows, err := t.ledgerQuery(sqlAddUsage, u.EntitlementID, r.window, u.Metric, u.Labels, int64(u.Kind), u.Int64, u.Double, r.at)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlitestore: add usage for %q: %w", u.EntitlementID, interpretError(err))
	}
	var got string
	found := rows.Next()
	if found {
		err = rows.Scan(&got)
	}
	err = errors.Join(err, rows.Err(), rows.Close())
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlitestore: add usage for %q: %w", u.EntitlementID, interpretError(err))
	}
	if !found {
		return time.Time{}, t.addUsageWhy(u)
	}
	return decodeTime(got)
}

// addUsageWhy explains why sqlAddUsage inserted nothing: sqlAddUsage
// applies ledger.Admit's rule in SQL, and Admit says which part of it
// refused u.
func (t *tx) addUsageWhy(u ledger.Usage) error {
	c, err := t.getConsumer(u.EntitlementID)
	if err != nil {
		return fmt.Errorf("sqlitestore: add usage for %q: %w", u.EntitlementID, interpretError(err))
	}
	if _, err := ledger.Admit(c, u); err != nil {
		return fmt.Errorf("sqlitestore: add %w", err)
	}
	return fmt.Errorf("sqlitestore: add usage for %q at %v: usage row not written for an unexplained reason", u.EntitlementID, u.At)
}

// storedValue is how a ledger.MetricValue is kept in metric_values.
type storedValue struct {
	Metric string  `json:"m"`
	Kind   int     `json:"k,omitempty"`
	Int64  int64   `json:"i,omitempty"`
	Double float64 `json:"d,omitempty"`
}

func encodeValues(vs []ledger.MetricValue) (string, error) {
	out := make([]storedValue, len(vs))
	for i, v := range vs {
		out[i] = storedValue{v.Metric, int(v.Kind), v.Int64, v.Double}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeValues(s string) ([]ledger.MetricValue, error) {
	var in []storedValue
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("stored metric values: %w", err)
	}
	out := make([]ledger.MetricValue, len(in))
	for i, v := range in {
		out[i] = ledger.MetricValue{Metric: v.Metric, Kind: ledger.MetricKind(v.Kind), Int64: v.Int64, Double: v.Double}
	}
	return out, nil
}

func windowArgs(w ledger.Window) ([]any, error) {
	ts, err := encodeTimes(w.Start, w.End, w.Deadline, w.SealedAt, w.LastAttempt, w.ReportedAt, w.LeaseUntil)
	if err != nil {
		return nil, err
	}
	vals, err := encodeValues(w.Values)
	if err != nil {
		return nil, err
	}
	return []any{w.OperationID, w.EntitlementID, w.ConsumerID, ts[0], ts[1], w.Labels, vals, string(w.State), w.Reason,
		ts[2], w.Attempts, ts[3], ts[4], ts[5], w.LeaseOwner, ts[6], w.LeaseToken}, nil
}

func scanWindow(row scanner) (ledger.Window, error) {
	var w ledger.Window
	var start, end, vals, state, deadline, sealed, last, reported, lease string
	if err := row.Scan(&w.OperationID, &w.EntitlementID, &w.ConsumerID, &start, &end, &w.Labels, &vals, &state, &w.Reason,
		&deadline, &w.Attempts, &sealed, &last, &reported, &w.LeaseOwner, &lease, &w.LeaseToken); err != nil {
		return w, err
	}
	w.State = ledger.WindowState(state)
	var err error
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&w.Start, start}, {&w.End, end}, {&w.Deadline, deadline}, {&w.SealedAt, sealed}, {&w.LastAttempt, last},
		{&w.ReportedAt, reported}, {&w.LeaseUntil, lease}} {
		if *f.dst, err = decodeTime(f.src); err != nil {
			return w, err
		}
	}
	w.Values, err = decodeValues(vals)
	return w, err
}

// Seal implements ledger.Ledger.
func (s *Store) Seal(ctx context.Context, p ledger.SealParams, fn ledger.SealFunc) (int, error) {
	ts, err := encodeTimes(p.Before, p.Ended)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: seal: %w", err)
	}
	before, ended := ts[0], ts[1]
	limit := int64(p.Limit)
	if limit <= 0 || len(p.Held) > 0 {
		limit = -1 // held consumers are skipped below, then p.Limit applies
	}
	n := 0
	err = s.ledgerTx(ctx, "seal", func(t *tx) error {
		rows, err := t.ledgerQuery(sqlSealPick, before, limit, ended)
		if err != nil {
			return fmt.Errorf("sqlitestore: seal: %w", interpretError(err))
		}
		ids, err := collect(rows, func(r scanner) (string, error) {
			var id string
			return id, r.Scan(&id)
		})
		if err != nil {
			return fmt.Errorf("sqlitestore: seal: %w", interpretError(err))
		}
		n = 0
		for _, id := range ids {
			if p.Held[id] {
				continue
			}
			if p.Limit > 0 && n >= p.Limit {
				break
			}
			if err := t.sealOne(id, before, p, fn); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (t *tx) sealOne(id, before string, p ledger.SealParams, fn ledger.SealFunc) error {
	c, err := t.getConsumer(id)
	if err != nil {
		return fmt.Errorf("sqlitestore: seal %q: %w", id, interpretError(err))
	}
	ended := p.EndedBy(c.Consumer)
	rows, err := t.ledgerQuery(sqlSealRows, id, before, ended)
	if err != nil {
		return fmt.Errorf("sqlitestore: seal %q: %w", id, interpretError(err))
	}
	urows, err := collect(rows, func(r scanner) (ledger.Row, error) {
		var u ledger.Row
		var w string
		var kind int64
		if err := r.Scan(&w, &u.Metric, &u.Labels, &kind, &u.Int64, &u.Double); err != nil {
			return u, err
		}
		u.Kind = ledger.MetricKind(kind)
		var err error
		u.Bucket, err = decodeTime(w)
		return u, err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: seal %q: %w", id, interpretError(err))
	}
	res, err := fn(c, urows)
	if err != nil {
		return err
	}
	for _, w := range res.Windows {
		args, err := windowArgs(w)
		if err != nil {
			return fmt.Errorf("sqlitestore: seal %q: window %s: %w", id, w.OperationID, err)
		}
		if _, err := t.ledgerExec(sqlInsertWindow, args...); err != nil {
			return fmt.Errorf("sqlitestore: seal %q: window %s: %w", id, w.OperationID, interpretError(err))
		}
	}
	if len(urows) > 0 {
		if _, err := t.ledgerExec(sqlSealDelete, id, before, ended); err != nil {
			return fmt.Errorf("sqlitestore: seal %q: %w", id, interpretError(err))
		}
	}
	frontier, err := encodeTime(res.Frontier)
	if err != nil {
		return fmt.Errorf("sqlitestore: seal %q: %w", id, err)
	}
	if _, err := t.ledgerExec(sqlSetFrontier, frontier, id); err != nil {
		return fmt.Errorf("sqlitestore: seal %q: %w", id, interpretError(err))
	}
	return nil
}

type sqlWhere struct {
	where []string
	args  []any
}
