package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// The usage ledger (ledger.Ledger) lives in the store's schema. Every method
// is one READ COMMITTED transaction. Replicas share it safely:
//
//   - AddUsage locks the consumer's row FOR SHARE and Seal locks it FOR
//     UPDATE, so a record either lands before Seal reads the consumer's rows
//     or waits and then sees the advanced frontier.
//   - Seal skips consumers another replica is sealing (a transaction-level
//     advisory lock per consumer, taken with pg_try_advisory_xact_lock), and
//     waits for in-flight AddUsage on the others, so a busy consumer is never
//     starved of sealing.
//   - ClaimWindows leases windows with FOR UPDATE SKIP LOCKED: two replicas
//     never claim one window at once, and a window whose lease has expired
//     (its holder died) is claimed by the next replica that asks. The old
//     holder's UpdateWindows then reports it lost.

var _ ledger.Ledger = (*Store)(nil)

const nsSeal = "seal" // advisory lock namespace: consumers being sealed

// zeroTime is how the zero time.Time is stored, and means "none".
const zeroTime = "'0001-01-01 00:00:00+00'::timestamptz"

const (
	consumerColumns = "entitlement_id, usage_reporting_id, start_time, end_time, frontier, block_code, block_detail, block_since"
	windowColumns   = "operation_id, entitlement_id, consumer_id, start_time, end_time, labels, metric_values, state, reason," +
		" deadline, attempts, sealed_at, last_attempt, reported_at, lease_owner, lease_until, lease_token"
)

type ledgerQueries struct {
	putConsumer, getConsumer, lockConsumer, listConsumers, listBlocked, setBlock string
	addUsage, sealPick, sealRows, sealDelete, setFrontier, insertWindow          string
	claim, updateWindow, listWindows, pruneWindows                               string
}

func newLedgerQueries(schema string) ledgerQueries {
	r := strings.NewReplacer("{s}", schema, "{zero}", zeroTime)
	qualified := "w." + strings.ReplaceAll(windowColumns, ", ", ", w.")
	return ledgerQueries{
		putConsumer: r.Replace("INSERT INTO {s}.usage_consumers (" + consumerColumns + ")" +
			" VALUES ($1, $2, $3, $4, $5, '', '', {zero})" +
			" ON CONFLICT (entitlement_id) DO UPDATE SET usage_reporting_id = excluded.usage_reporting_id," +
			" start_time = excluded.start_time, end_time = excluded.end_time"),
		getConsumer:   r.Replace("SELECT " + consumerColumns + " FROM {s}.usage_consumers WHERE entitlement_id = $1"),
		lockConsumer:  r.Replace("SELECT " + consumerColumns + " FROM {s}.usage_consumers WHERE entitlement_id = $1 FOR UPDATE"),
		listConsumers: r.Replace("SELECT " + consumerColumns + " FROM {s}.usage_consumers ORDER BY entitlement_id"),
		listBlocked:   r.Replace("SELECT " + consumerColumns + " FROM {s}.usage_consumers WHERE block_code <> '' ORDER BY entitlement_id"),
		setBlock:      r.Replace("UPDATE {s}.usage_consumers SET block_code = $2, block_detail = $3, block_since = $4 WHERE entitlement_id = $1"),

		// One statement: the consumer's checks, its row lock and the
		// aggregation. No row comes back when a check fails; addUsageWhy
		// then says which. After waiting for a Seal, READ COMMITTED
		// re-evaluates the checks and the window on the sealed consumer.
		addUsage: r.Replace("INSERT INTO {s}.usage_rows AS r (entitlement_id, window_start, metric, labels, kind, int_value, double_value)" +
			" SELECT c.entitlement_id, greatest($2::timestamptz, c.frontier), $3, $4, $5, $6, $7 FROM {s}.usage_consumers c" +
			" WHERE c.entitlement_id = $1" +
			" AND (c.start_time = {zero} OR $8::timestamptz >= c.start_time)" +
			" AND (c.end_time = {zero} OR ($8::timestamptz < c.end_time AND greatest($2::timestamptz, c.frontier) < c.end_time))" +
			" FOR SHARE OF c" +
			" ON CONFLICT (entitlement_id, window_start, metric, labels) DO UPDATE SET" +
			" int_value = r.int_value + excluded.int_value, double_value = r.double_value + excluded.double_value" +
			" RETURNING window_start"),
		// $2 is SealParams.Ended; the zero time selects no ended consumer,
		// since only a zero end_time is not after it.
		sealPick: r.Replace("SELECT entitlement_id FROM {s}.usage_consumers c" +
			" WHERE (c.frontier < $1 AND (c.end_time = {zero} OR c.frontier < c.end_time))" +
			" OR EXISTS (SELECT 1 FROM {s}.usage_rows u WHERE u.entitlement_id = c.entitlement_id AND u.window_start < $1)" +
			" OR (c.end_time <> {zero} AND c.end_time <= $2 AND (c.frontier < c.end_time" +
			" OR EXISTS (SELECT 1 FROM {s}.usage_rows u WHERE u.entitlement_id = c.entitlement_id)))" +
			" ORDER BY c.frontier, c.entitlement_id"),
		// $3 is true for an ended consumer: all its rows are sealed.
		sealRows: r.Replace("SELECT window_start, metric, labels, kind, int_value, double_value FROM {s}.usage_rows" +
			" WHERE entitlement_id = $1 AND ($3::boolean OR window_start < $2) ORDER BY window_start, metric, labels"),
		sealDelete:  r.Replace("DELETE FROM {s}.usage_rows WHERE entitlement_id = $1 AND ($3::boolean OR window_start < $2)"),
		setFrontier: r.Replace("UPDATE {s}.usage_consumers SET frontier = $2 WHERE entitlement_id = $1"),
		insertWindow: r.Replace("INSERT INTO {s}.usage_windows (" + windowColumns + ")" +
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (operation_id) DO NOTHING"),

		claim: r.Replace("WITH picked AS (SELECT operation_id FROM {s}.usage_windows" +
			" WHERE state IN ('pending', 'unknown') AND lease_until <= $3" +
			" ORDER BY start_time, operation_id LIMIT $4 FOR UPDATE SKIP LOCKED)" +
			" UPDATE {s}.usage_windows w SET lease_owner = $1, lease_until = $2, lease_token = w.lease_token + 1 FROM picked" +
			" WHERE w.operation_id = picked.operation_id RETURNING " + qualified),
		// An override ($8 = '') applies unconditionally and fences the
		// lease holder out; an owner's update applies only under its own
		// claim.
		updateWindow: r.Replace("UPDATE {s}.usage_windows SET state = $2, reason = $3, attempts = $4, last_attempt = $5," +
			" reported_at = $6, lease_until = $7, lease_token = lease_token + CASE WHEN $8::text = '' THEN 1 ELSE 0 END" +
			" WHERE operation_id = $1 AND ($8::text = '' OR (lease_owner = $8::text AND lease_token = $9::bigint))"),
		listWindows:  r.Replace("SELECT " + windowColumns + " FROM {s}.usage_windows"),
		pruneWindows: r.Replace("DELETE FROM {s}.usage_windows WHERE state IN ('reported', 'rejected') AND sealed_at < $1"),
	}
}

// ledgerTx runs fn in one transaction, for the ledger method op.
func (s *Store) ledgerTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	defer s.running.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: %s: begin transaction: %w", op, err)
	}
	ended := false
	defer func() {
		if !ended { // also on panic (in a SealFunc)
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	ended = true
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("pgstore: %s: commit: %w", op, interpretError(err))
	}
	return nil
}

// checkIDs rejects empty and unstorable identifiers with ledger.ErrInvalid.
func checkIDs(op string, ids ...string) error {
	for _, id := range ids {
		if id == "" {
			return fmt.Errorf("pgstore: %s: empty id: %w", op, ledger.ErrInvalid)
		}
	}
	if err := badText(ids...); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, invalid(ledger.ErrInvalid, err))
	}
	return nil
}

func scanConsumer(row pgx.Row) (ledger.ConsumerState, error) {
	var c ledger.ConsumerState
	err := row.Scan(&c.EntitlementID, &c.UsageReportingID, &c.Start, &c.End, &c.Frontier, &c.Block.Code, &c.Block.Detail, &c.Block.Since)
	c.Start, c.End, c.Frontier, c.Block.Since = c.Start.UTC(), c.End.UTC(), c.Frontier.UTC(), c.Block.Since.UTC()
	return c, err
}

// consumerError translates a failed consumer read.
func consumerError(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.ErrUnknownConsumer
	}
	return interpretError(err)
}

// PutConsumer implements ledger.Ledger.
func (s *Store) PutConsumer(ctx context.Context, c ledger.Consumer, frontier time.Time) error {
	const op = "put consumer"
	if err := checkIDs(op, c.EntitlementID); err != nil {
		return err
	}
	if err := errors.Join(badText(c.UsageReportingID), badTime(c.Start, c.End, frontier)); err != nil {
		return fmt.Errorf("pgstore: put consumer %q: %w", c.EntitlementID, invalid(ledger.ErrInvalid, err))
	}
	return s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.lq.putConsumer, c.EntitlementID, c.UsageReportingID, c.Start, c.End, frontier); err != nil {
			return fmt.Errorf("pgstore: put consumer %q: %w", c.EntitlementID, interpretError(err))
		}
		return nil
	})
}

// GetConsumer implements ledger.Ledger.
func (s *Store) GetConsumer(ctx context.Context, entitlementID string) (ledger.ConsumerState, error) {
	const op = "get consumer"
	if err := checkIDs(op, entitlementID); err != nil {
		return ledger.ConsumerState{}, err
	}
	var c ledger.ConsumerState
	err := s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if c, err = scanConsumer(tx.QueryRow(ctx, s.lq.getConsumer, entitlementID)); err != nil {
			return fmt.Errorf("pgstore: get consumer %q: %w", entitlementID, consumerError(err))
		}
		return nil
	})
	return c, err
}

// ListConsumers implements ledger.Ledger.
func (s *Store) ListConsumers(ctx context.Context, q ledger.ConsumerQuery) ([]ledger.ConsumerState, error) {
	query := s.lq.listConsumers
	if q.BlockedOnly {
		query = s.lq.listBlocked
	}
	var out []ledger.ConsumerState
	err := s.ledgerTx(ctx, "list consumers", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if out, err = collect(ctx, tx, query, nil, scanConsumer); err != nil {
			return fmt.Errorf("pgstore: list consumers: %w", interpretError(err))
		}
		return nil
	})
	return out, err
}

// SetBlock implements ledger.Ledger. Block.Detail is Google's text: bytes
// PostgreSQL cannot store are replaced, not refused.
func (s *Store) SetBlock(ctx context.Context, entitlementID string, b ledger.Block) error {
	const op = "set block"
	if err := checkIDs(op, entitlementID); err != nil {
		return err
	}
	if err := badTime(b.Since); err != nil {
		return fmt.Errorf("pgstore: set block of %q: %w", entitlementID, invalid(ledger.ErrInvalid, err))
	}
	return s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.lq.setBlock, entitlementID, cleanText(b.Code), cleanText(b.Detail), b.Since)
		if err != nil {
			return fmt.Errorf("pgstore: set block of %q: %w", entitlementID, interpretError(err))
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("pgstore: set block of %q: %w", entitlementID, ledger.ErrUnknownConsumer)
		}
		return nil
	})
}

// AddUsage implements ledger.Ledger.
func (s *Store) AddUsage(ctx context.Context, u ledger.Usage) (time.Time, error) {
	const op = "add usage"
	if err := checkIDs(op, u.EntitlementID); err != nil {
		return time.Time{}, err
	}
	if err := errors.Join(badText(u.Metric, u.Labels), badTime(u.At, u.Bucket)); err != nil {
		return time.Time{}, fmt.Errorf("pgstore: add usage for %q: %w", u.EntitlementID, invalid(ledger.ErrInvalid, err))
	}
	var w time.Time
	err := s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, s.lq.addUsage, u.EntitlementID, u.Bucket, u.Metric, u.Labels, int16(u.Kind), u.Int64, u.Double, u.At).Scan(&w)
		if errors.Is(err, pgx.ErrNoRows) {
			return s.addUsageWhy(ctx, tx, u)
		}
		if err != nil {
			return fmt.Errorf("pgstore: add usage for %q: %w", u.EntitlementID, interpretError(err))
		}
		return nil
	})
	return w.UTC(), err
}

// addUsageWhy explains why addUsage inserted nothing: the query applies
// ledger.Admit's rule in SQL, and Admit says which part of it refused u.
func (s *Store) addUsageWhy(ctx context.Context, tx pgx.Tx, u ledger.Usage) error {
	c, err := scanConsumer(tx.QueryRow(ctx, s.lq.getConsumer, u.EntitlementID))
	if err != nil {
		return fmt.Errorf("pgstore: add usage for %q: %w", u.EntitlementID, consumerError(err))
	}
	u.Bucket = u.Bucket.Truncate(time.Microsecond) // as stored
	if _, err := ledger.Admit(c, u); err != nil {
		return fmt.Errorf("pgstore: add %w", err)
	}
	return fmt.Errorf("pgstore: add usage for %q at %v: usage row not written for an unexplained reason", u.EntitlementID, u.At)
}

// storedValue is how a ledger.MetricValue is kept in metric_values (the
// same JSON as sqlitestore's).
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
	if err := errors.Join(
		badText(w.OperationID, w.EntitlementID, w.ConsumerID, w.Labels, string(w.State), w.LeaseOwner),
		badTime(w.Start, w.End, w.Deadline, w.SealedAt, w.LastAttempt, w.ReportedAt, w.LeaseUntil),
	); err != nil {
		return nil, invalid(ledger.ErrInvalid, err)
	}
	if w.OperationID == "" {
		return nil, fmt.Errorf("empty operation id: %w", ledger.ErrInvalid)
	}
	vals, err := encodeValues(w.Values)
	if err != nil {
		return nil, err
	}
	return []any{w.OperationID, w.EntitlementID, w.ConsumerID, w.Start, w.End, w.Labels, vals, string(w.State), cleanText(w.Reason),
		w.Deadline, w.Attempts, w.SealedAt, w.LastAttempt, w.ReportedAt, w.LeaseOwner, w.LeaseUntil, w.LeaseToken}, nil
}

func scanWindow(row pgx.Row) (ledger.Window, error) {
	var w ledger.Window
	var vals, state string
	if err := row.Scan(&w.OperationID, &w.EntitlementID, &w.ConsumerID, &w.Start, &w.End, &w.Labels, &vals, &state, &w.Reason,
		&w.Deadline, &w.Attempts, &w.SealedAt, &w.LastAttempt, &w.ReportedAt, &w.LeaseOwner, &w.LeaseUntil, &w.LeaseToken); err != nil {
		return w, err
	}
	w.State = ledger.WindowState(state)
	for _, t := range []*time.Time{&w.Start, &w.End, &w.Deadline, &w.SealedAt, &w.LastAttempt, &w.ReportedAt, &w.LeaseUntil} {
		*t = t.UTC()
	}
	var err error
	w.Values, err = decodeValues(vals)
	return w, err
}

// Seal implements ledger.Ledger. Several replicas may seal at once: each
// consumer is sealed by one of them, and a consumer another replica is
// sealing is skipped (it does not count towards the result). Seal waits
// for AddUsage transactions in flight on the consumers it seals.
func (s *Store) Seal(ctx context.Context, p ledger.SealParams, fn ledger.SealFunc) (int, error) {
	if err := badTime(p.Before, p.Ended); err != nil {
		return 0, fmt.Errorf("pgstore: seal: %w", invalid(ledger.ErrInvalid, err))
	}
	n := 0
	err := s.ledgerTx(ctx, "seal", func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		ids, err := collect(ctx, tx, s.lq.sealPick, []any{p.Before, p.Ended}, func(r pgx.Row) (string, error) {
			var id string
			return id, r.Scan(&id)
		})
		if err != nil {
			return fmt.Errorf("pgstore: seal: %w", interpretError(err))
		}
		for _, id := range ids {
			if p.Limit > 0 && n >= p.Limit {
				break
			}
			if p.Held[id] {
				continue
			}
			sealed, err := s.sealOne(ctx, tx, id, p, fn)
			if err != nil {
				return err
			}
			if sealed {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// sealOne seals consumer id unless another replica holds it or, once it is
// locked, it turns out to have nothing left to seal.
func (s *Store) sealOne(ctx context.Context, tx pgx.Tx, id string, p ledger.SealParams, fn ledger.SealFunc) (bool, error) {
	var mine bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", s.lockID(nsSeal, id)).Scan(&mine); err != nil {
		return false, fmt.Errorf("pgstore: seal %q: %w", id, interpretError(err))
	}
	if !mine {
		return false, nil
	}
	c, err := scanConsumer(tx.QueryRow(ctx, s.lq.lockConsumer, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // gone meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("pgstore: seal %q: %w", id, interpretError(err))
	}
	ended := p.EndedBy(c.Consumer)
	rows, err := collect(ctx, tx, s.lq.sealRows, []any{id, p.Before, ended}, func(r pgx.Row) (ledger.Row, error) {
		var u ledger.Row
		var kind int16
		err := r.Scan(&u.Bucket, &u.Metric, &u.Labels, &kind, &u.Int64, &u.Double)
		u.Kind, u.Bucket = ledger.MetricKind(kind), u.Bucket.UTC()
		return u, err
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: seal %q: %w", id, interpretError(err))
	}
	// The pick ran before the lock: another replica may have sealed the
	// consumer since. Never hand fn a consumer with nothing to seal, which
	// could move its frontier back.
	open := c.Frontier.Before(p.Before) && (c.End.IsZero() || c.Frontier.Before(c.End))
	if !open && !(ended && c.Frontier.Before(c.End)) && len(rows) == 0 {
		return false, nil
	}
	res, err := fn(c, rows)
	if err != nil {
		return false, err
	}
	if err := badTime(res.Frontier); err != nil {
		return false, fmt.Errorf("pgstore: seal %q: frontier: %w", id, invalid(ledger.ErrInvalid, err))
	}
	batch := &pgx.Batch{}
	for _, w := range res.Windows {
		args, err := windowArgs(w)
		if err != nil {
			return false, fmt.Errorf("pgstore: seal %q: window %s: %w", id, w.OperationID, err)
		}
		batch.Queue(s.lq.insertWindow, args...)
	}
	if len(rows) > 0 {
		batch.Queue(s.lq.sealDelete, id, p.Before, ended)
	}
	batch.Queue(s.lq.setFrontier, id, res.Frontier)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return false, fmt.Errorf("pgstore: seal %q: %w", id, interpretError(err))
	}
	return true, nil
}
