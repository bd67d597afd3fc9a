package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Statements run with a context that is never cancelled. modernc.org/sqlite
// interrupts a running statement when its context is cancelled, and an
// interrupted write inside an explicit transaction rolls back the whole
// transaction: here, every caller's work in the commit group. The caller's
// ctx is checked before each statement instead; statements are short.
var stmtCtx = context.Background()

// timeLayout is fixed width so that stored times compare as strings.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func encodeTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return "", fmt.Errorf("time %v outside years 1 to 9999: %w", t, marketplace.ErrInvalid)
	}
	return t.Format(timeLayout), nil
}

func decodeTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func encodeTimes(ts ...time.Time) ([]string, error) {
	out := make([]string, len(ts))
	for i, t := range ts {
		var err error
		if out[i], err = encodeTime(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// statements are prepared once on the writer's connection. The read
// statements are kept by their SQL text (readQueries), the key the querier
// interface uses.
type statements struct {
	conn                                                  *sql.Conn
	reads                                                 map[string]*sql.Stmt
	markProcessed, pruneProcessed                         *sql.Stmt
	putAccount, deleteAccount                             *sql.Stmt
	putEntitlement, advanceEntitlement, deleteEntitlement *sql.Stmt
	enqueueApproval, deleteApproval                       *sql.Stmt
	recordPoison, deletePoison                            *sql.Stmt
}

// The statements that only read, shared by the writer's transactions and
// the readers' (View).
const (
	queryIsProcessed    = "SELECT 1 FROM processed_events WHERE event_id = ?"
	queryGetAccount     = "SELECT " + accountColumns + " FROM accounts WHERE id = ?"
	queryListAccounts   = "SELECT " + accountColumns + " FROM accounts ORDER BY id"
	queryGetEntitlement = "SELECT " + entitlementColumns + " FROM entitlements WHERE id = ?"
	queryGetApproval    = "SELECT " + approvalColumns + " FROM approval_queue WHERE entitlement_id = ? AND kind = ?"
	queryListApprovals  = "SELECT " + approvalColumns + " FROM approval_queue ORDER BY seq"
	queryListPoison     = "SELECT message_id, event_id, reason, data, at FROM poison_messages ORDER BY at DESC, id DESC LIMIT ?"
)

// readQueries are prepared ahead on every connection that runs them.
var readQueries = []string{
	queryIsProcessed, queryGetAccount, queryListAccounts, queryGetEntitlement,
	queryGetApproval, queryListApprovals, queryListPoison,
}

// querier runs the statements that read. Statements are named by their SQL
// text; an implementation runs the ones it has prepared (readQueries) as
// such, and any other (ListEntitlements builds its query) directly. It is
// implemented by the writer's statements and by a reader connection
// (read.go), so that the Tx read methods are one code for both.
type querier interface {
	queryRow(query string, args ...any) *sql.Row
	query(query string, args ...any) (*sql.Rows, error)
}

var _ querier = (*statements)(nil)

func (st *statements) queryRow(query string, args ...any) *sql.Row {
	if ps, ok := st.reads[query]; ok {
		return ps.QueryRowContext(stmtCtx, args...)
	}
	return st.conn.QueryRowContext(stmtCtx, query, args...)
}

func (st *statements) query(query string, args ...any) (*sql.Rows, error) {
	if ps, ok := st.reads[query]; ok {
		return ps.QueryContext(stmtCtx, args...)
	}
	return st.conn.QueryContext(stmtCtx, query, args...)
}

const (
	accountColumns     = "id, signup_approved, vendor_user_id, user_identity, update_time, created_at"
	entitlementColumns = "id, account_id, product, plan, pending_plan, state, usage_reporting_id, update_time, parked, parked_at, cancel_time, offer"
	approvalColumns    = "entitlement_id, kind, account_id, plan, requested_at, seq"
	upsertEntitlement  = "INSERT INTO entitlements (" + entitlementColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" +
		" ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, product = excluded.product, plan = excluded.plan," +
		" pending_plan = excluded.pending_plan, state = excluded.state, usage_reporting_id = excluded.usage_reporting_id," +
		" update_time = excluded.update_time, parked = excluded.parked, parked_at = excluded.parked_at, cancel_time = excluded.cancel_time," +
		" offer = excluded.offer"
)

func prepareStatements(ctx context.Context, conn *sql.Conn) (*statements, error) {
	st := &statements{conn: conn, reads: make(map[string]*sql.Stmt, len(readQueries))}
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		*dst, err = conn.PrepareContext(ctx, query)
		if err != nil {
			err = fmt.Errorf("prepare %q: %w", query, err)
		}
	}
	prep(&st.markProcessed, "INSERT INTO processed_events (event_id, processed_at) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING")
	prep(&st.pruneProcessed, "DELETE FROM processed_events WHERE processed_at < ?")

	prep(&st.putAccount, "INSERT INTO accounts ("+accountColumns+") VALUES (?, ?, ?, ?, ?, ?)"+
		" ON CONFLICT (id) DO UPDATE SET signup_approved = excluded.signup_approved, vendor_user_id = excluded.vendor_user_id,"+
		" user_identity = excluded.user_identity, update_time = excluded.update_time, created_at = excluded.created_at")
	prep(&st.deleteAccount, "DELETE FROM accounts WHERE id = ?")

	prep(&st.putEntitlement, upsertEntitlement)
	// The updateTime guard: the DO UPDATE applies only to a strictly newer
	// update, and changes() is 0 when it does not.
	prep(&st.advanceEntitlement, upsertEntitlement+" WHERE excluded.update_time > entitlements.update_time")
	prep(&st.deleteEntitlement, "DELETE FROM entitlements WHERE id = ?")

	prep(&st.enqueueApproval, "INSERT INTO approval_queue (entitlement_id, kind, account_id, plan, requested_at) VALUES (?, ?, ?, ?, ?)"+
		" ON CONFLICT (entitlement_id, kind) DO UPDATE SET account_id = excluded.account_id, plan = excluded.plan,"+
		" requested_at = excluded.requested_at RETURNING seq")
	prep(&st.deleteApproval, "DELETE FROM approval_queue WHERE entitlement_id = ? AND kind = ?")

	prep(&st.recordPoison, "INSERT INTO poison_messages (message_id, event_id, reason, data, at) VALUES (?, ?, ?, ?, ?)")
	prep(&st.deletePoison, "DELETE FROM poison_messages WHERE message_id = ?")
	for _, q := range readQueries {
		var ps *sql.Stmt
		prep(&ps, q)
		if ps != nil {
			st.reads[q] = ps
		}
	}
	if err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

func (st *statements) close() {
	if st == nil {
		return
	}
	for _, s := range []*sql.Stmt{
		st.markProcessed, st.pruneProcessed,
		st.putAccount, st.deleteAccount,
		st.putEntitlement, st.advanceEntitlement, st.deleteEntitlement,
		st.enqueueApproval, st.deleteApproval,
		st.recordPoison, st.deletePoison,
	} {
		if s != nil {
			_ = s.Close()
		}
	}
	for _, s := range st.reads {
		_ = s.Close()
	}
}

// tx is the marketplace.Tx of one turn of the writer or, with view set, of
// a read-only transaction (View). Its mutex makes a Tx that escaped its fn
// fail cleanly (ErrTxDone) instead of running statements in another
// caller's transaction.
type tx struct {
	s    *Store
	view *reader // set, before use, for a read-only transaction
	mu   sync.Mutex
	done bool
}

var _ marketplace.Tx = (*tx)(nil)

func (t *tx) end() {
	t.mu.Lock()
	t.done = true
	t.mu.Unlock()
}

// reads returns where the read methods run their statements.
func (t *tx) reads() querier {
	if t.view != nil {
		return t.view
	}
	return t.s.stmts
}

// exec runs a control statement (SAVEPOINT and friends) for the turn.
func (t *tx) exec(query string) error {
	_, err := t.s.conn.ExecContext(stmtCtx, query)
	return err
}

// enter starts a Tx method: on success t.mu is held and the caller must
// unlock it.
func (t *tx) enter(ctx context.Context, op string, ids ...string) error {
	t.mu.Lock()
	err := func() error {
		if t.done {
			return marketplace.ErrTxDone
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if id == "" {
				return fmt.Errorf("empty id: %w", marketplace.ErrInvalid)
			}
		}
		return nil
	}()
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("sqlitestore: %s: %w", op, err)
	}
	return nil
}

// enterWrite is enter for the methods that write, which a read-only
// transaction refuses.
func (t *tx) enterWrite(ctx context.Context, op string, ids ...string) error {
	if t.view != nil {
		return fmt.Errorf("sqlitestore: %s: %w", op, marketplace.ErrReadOnly)
	}
	return t.enter(ctx, op, ids...)
}

func (t *tx) Lock(ctx context.Context, key string) error {
	if err := t.enter(ctx, "lock", key); err != nil {
		return err
	}
	defer t.mu.Unlock()
	// Nothing to do: a writer's transaction already holds SQLite's write
	// lock, which excludes every other transaction on the file, and a
	// read-only one takes no locks.
	return nil
}

func (t *tx) MarkProcessed(ctx context.Context, eventID string, at time.Time) (bool, error) {
	if err := t.enterWrite(ctx, "mark processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(at)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, err)
	}
	res, err := t.s.stmts.markProcessed.ExecContext(stmtCtx, eventID, ts)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlitestore: mark processed %q: %w", eventID, err)
	}
	return n == 1, nil
}

func (t *tx) IsProcessed(ctx context.Context, eventID string) (bool, error) {
	if err := t.enter(ctx, "is processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	var one int
	err := t.reads().queryRow(queryIsProcessed, eventID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlitestore: is processed %q: %w", eventID, interpretError(err))
	}
	return true, nil
}

func (t *tx) PruneProcessed(ctx context.Context, before time.Time) (int, error) {
	if err := t.enterWrite(ctx, "prune processed"); err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed: %w", err)
	}
	res, err := t.s.stmts.pruneProcessed.ExecContext(stmtCtx, ts)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed before %v: %w", before, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune processed: %w", err)
	}
	return int(n), nil
}

type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner) (marketplace.Account, error) {
	var a marketplace.Account
	var updateTime, createdAt string
	if err := row.Scan(&a.ID, &a.SignupApproved, &a.VendorUserID, &a.UserIdentity, &updateTime, &createdAt); err != nil {
		return a, err
	}
	var err error
	if a.UpdateTime, err = decodeTime(updateTime); err != nil {
		return a, err
	}
	a.CreatedAt, err = decodeTime(createdAt)
	return a, err
}

func (t *tx) GetAccount(ctx context.Context, id string) (marketplace.Account, error) {
	if err := t.enter(ctx, "get account", id); err != nil {
		return marketplace.Account{}, err
	}
	defer t.mu.Unlock()
	a, err := scanAccount(t.reads().queryRow(queryGetAccount, id))
	if err != nil {
		return marketplace.Account{}, fmt.Errorf("sqlitestore: get account %q: %w", id, interpretError(err))
	}
	return a, nil
}

func (t *tx) PutAccount(ctx context.Context, a marketplace.Account) error {
	if err := t.enterWrite(ctx, "put account", a.ID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	ts, err := encodeTimes(a.UpdateTime, a.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlitestore: put account %q: %w", a.ID, err)
	}
	if _, err := t.s.stmts.putAccount.ExecContext(stmtCtx, a.ID, a.SignupApproved, a.VendorUserID, a.UserIdentity, ts[0], ts[1]); err != nil {
		return fmt.Errorf("sqlitestore: put account %q: %w", a.ID, interpretError(err))
	}
	return nil
}

func (t *tx) DeleteAccount(ctx context.Context, id string) error {
	if err := t.enterWrite(ctx, "delete account", id); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.s.stmts.deleteAccount.ExecContext(stmtCtx, id); err != nil {
		return fmt.Errorf("sqlitestore: delete account %q: %w", id, interpretError(err))
	}
	return nil
}

func (t *tx) ListAccounts(ctx context.Context) ([]marketplace.Account, error) {
	if err := t.enter(ctx, "list accounts"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	out, err := queryAll(t.reads(), queryListAccounts, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list accounts: %w", interpretError(err))
	}
	return out, nil
}

func scanEntitlement(row scanner) (marketplace.Entitlement, error) {
	var e marketplace.Entitlement
	var updateTime, parkedAt, cancelTime string
	if err := row.Scan(&e.ID, &e.AccountID, &e.Product, &e.Plan, &e.PendingPlan, &e.State, &e.UsageReportingID,
		&updateTime, &e.Parked, &parkedAt, &cancelTime, &e.Offer); err != nil {
		return e, err
	}
	var err error
	if e.UpdateTime, err = decodeTime(updateTime); err != nil {
		return e, err
	}
	if e.ParkedAt, err = decodeTime(parkedAt); err != nil {
		return e, err
	}
	e.CancelTime, err = decodeTime(cancelTime)
	return e, err
}

func entitlementArgs(e marketplace.Entitlement) ([]any, error) {
	ts, err := encodeTimes(e.UpdateTime, e.ParkedAt, e.CancelTime)
	if err != nil {
		return nil, err
	}
	return []any{e.ID, e.AccountID, e.Product, e.Plan, e.PendingPlan, e.State, e.UsageReportingID,
		ts[0], e.Parked, ts[1], ts[2], e.Offer}, nil
}

func (t *tx) GetEntitlement(ctx context.Context, id string) (marketplace.Entitlement, error) {
	if err := t.enter(ctx, "get entitlement", id); err != nil {
		return marketplace.Entitlement{}, err
	}
	defer t.mu.Unlock()
	e, err := scanEntitlement(t.reads().queryRow(queryGetEntitlement, id))
	if err != nil {
		return marketplace.Entitlement{}, fmt.Errorf("sqlitestore: get entitlement %q: %w", id, interpretError(err))
	}
	return e, nil
}

func (t *tx) PutEntitlement(ctx context.Context, e marketplace.Entitlement) error {
	if err := t.enterWrite(ctx, "put entitlement", e.ID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	args, err := entitlementArgs(e)
	if err != nil {
		return fmt.Errorf("sqlitestore: put entitlement %q: %w", e.ID, err)
	}
	if _, err := t.s.stmts.putEntitlement.ExecContext(stmtCtx, args...); err != nil {
		return fmt.Errorf("sqlitestore: put entitlement %q: %w", e.ID, interpretError(err))
	}
	return nil
}

func (t *tx) AdvanceEntitlement(ctx context.Context, e marketplace.Entitlement) (bool, error) {
	if err := t.enterWrite(ctx, "advance entitlement", e.ID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	args, err := entitlementArgs(e)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: advance entitlement %q: %w", e.ID, err)
	}
	res, err := t.s.stmts.advanceEntitlement.ExecContext(stmtCtx, args...)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: advance entitlement %q: %w", e.ID, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlitestore: advance entitlement %q: %w", e.ID, err)
	}
	return n == 1, nil
}

func (t *tx) DeleteEntitlement(ctx context.Context, id string) error {
	if err := t.enterWrite(ctx, "delete entitlement", id); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.s.stmts.deleteEntitlement.ExecContext(stmtCtx, id); err != nil {
		return fmt.Errorf("sqlitestore: delete entitlement %q: %w", id, interpretError(err))
	}
	return nil
}

func (t *tx) ListEntitlements(ctx context.Context, q marketplace.EntitlementQuery) ([]marketplace.Entitlement, error) {
	if err := t.enter(ctx, "list entitlements"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// Built per query so that SQLite can use the account_id index or the
	// partial index on parked rows.
	var where []string
	var args []any
	if q.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, q.AccountID)
	}
	if q.State != "" {
		where = append(where, "state = ?")
		args = append(args, q.State)
	}
	if q.ParkedOnly {
		where = append(where, "parked <> 0")
	}
	query := "SELECT " + entitlementColumns + " FROM entitlements"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id"
	rows, err := t.reads().query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list entitlements: %w", interpretError(err))
	}
	out, err := collect(rows, scanEntitlement)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list entitlements: %w", interpretError(err))
	}
	return out, nil
}

func scanApproval(row scanner) (marketplace.ApprovalRequest, error) {
	var r marketplace.ApprovalRequest
	var requestedAt string
	if err := row.Scan(&r.EntitlementID, &r.Kind, &r.AccountID, &r.Plan, &requestedAt, &r.Seq); err != nil {
		return r, err
	}
	var err error
	r.RequestedAt, err = decodeTime(requestedAt)
	return r, err
}

func (t *tx) EnqueueApproval(ctx context.Context, r marketplace.ApprovalRequest) (marketplace.ApprovalRequest, error) {
	if err := t.enterWrite(ctx, "enqueue approval", r.EntitlementID, string(r.Kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(r.RequestedAt)
	if err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("sqlitestore: enqueue approval %q/%s: %w", r.EntitlementID, r.Kind, err)
	}
	err = t.s.stmts.enqueueApproval.QueryRowContext(stmtCtx, r.EntitlementID, string(r.Kind), r.AccountID, r.Plan, ts).Scan(&r.Seq)
	if err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("sqlitestore: enqueue approval %q/%s: %w", r.EntitlementID, r.Kind, interpretError(err))
	}
	r.RequestedAt = r.RequestedAt.UTC()
	return r, nil
}

func (t *tx) GetApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) (marketplace.ApprovalRequest, error) {
	if err := t.enter(ctx, "get approval", entitlementID, string(kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	defer t.mu.Unlock()
	r, err := scanApproval(t.reads().queryRow(queryGetApproval, entitlementID, string(kind)))
	if err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("sqlitestore: get approval %q/%s: %w", entitlementID, kind, interpretError(err))
	}
	return r, nil
}

func (t *tx) ListApprovals(ctx context.Context) ([]marketplace.ApprovalRequest, error) {
	if err := t.enter(ctx, "list approvals"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	out, err := queryAll(t.reads(), queryListApprovals, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list approvals: %w", interpretError(err))
	}
	return out, nil
}

func (t *tx) DeleteApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) error {
	if err := t.enterWrite(ctx, "delete approval", entitlementID, string(kind)); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.s.stmts.deleteApproval.ExecContext(stmtCtx, entitlementID, string(kind)); err != nil {
		return fmt.Errorf("sqlitestore: delete approval %q/%s: %w", entitlementID, kind, interpretError(err))
	}
	return nil
}

func (t *tx) RecordPoison(ctx context.Context, p marketplace.Poison) error {
	if err := t.enterWrite(ctx, "record poison"); err != nil {
		return err
	}
	defer t.mu.Unlock()
	ts, err := encodeTime(p.At)
	if err != nil {
		return fmt.Errorf("sqlitestore: record poison %q: %w", p.MessageID, err)
	}
	data := p.Data
	if len(data) > marketplace.PoisonDataLimit {
		data = data[:marketplace.PoisonDataLimit]
	}
	if data == nil {
		data = []byte{} // the column is NOT NULL
	}
	if _, err := t.s.stmts.recordPoison.ExecContext(stmtCtx, p.MessageID, p.EventID, p.Reason, data, ts); err != nil {
		return fmt.Errorf("sqlitestore: record poison %q: %w", p.MessageID, interpretError(err))
	}
	return nil
}

func (t *tx) DeletePoison(ctx context.Context, messageID string) error {
	if err := t.enterWrite(ctx, "delete poison", messageID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.s.stmts.deletePoison.ExecContext(stmtCtx, messageID); err != nil {
		return fmt.Errorf("sqlitestore: delete poison %q: %w", messageID, interpretError(err))
	}
	return nil
}

func (t *tx) ListPoison(ctx context.Context, limit int) ([]marketplace.Poison, error) {
	if err := t.enter(ctx, "list poison"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.reads().query(queryListPoison, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list poison: %w", interpretError(err))
	}
	out, err := collect(rows, func(row scanner) (marketplace.Poison, error) {
		var p marketplace.Poison
		var at string
		if err := row.Scan(&p.MessageID, &p.EventID, &p.Reason, &p.Data, &at); err != nil {
			return p, err
		}
		var err error
		p.At, err = decodeTime(at)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list poison: %w", interpretError(err))
	}
	return out, nil
}

func queryAll[T any](q querier, query string, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.query(query)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
