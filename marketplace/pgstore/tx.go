package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

const (
	accountColumns     = "id, signup_approved, vendor_user_id, user_identity, update_time, created_at"
	entitlementColumns = "id, account_id, product, plan, pending_plan, state, usage_reporting_id, update_time, parked, parked_at, cancel_time, offer"
	approvalColumns    = "entitlement_id, kind, account_id, plan, requested_at, seq"
)

// queries are the store's statements with its schema filled in. pgx
// prepares and caches each one per connection on first use.
type queries struct {
	schema          string // quoted
	migrationsTable string

	markProcessed, isProcessed, pruneProcessed                            string
	getAccount, putAccount, deleteAccount, listAccounts                   string
	getEntitlement, putEntitlement, advanceEntitlement, deleteEntitlement string
	listEntitlements                                                      string // without WHERE and ORDER BY
	enqueueApproval, getApproval, listApprovals, deleteApproval           string
	recordPoison, listPoison, deletePoison                                string
	appendTransition, deleteTransitions, listTransitions                  string // history.go; listTransitions without WHERE
}

func newQueries(schema string) queries {
	r := strings.NewReplacer("{s}", schema)
	upsertEntitlement := "INSERT INTO {s}.entitlements AS e (" + entitlementColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)" +
		" ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, product = excluded.product, plan = excluded.plan," +
		" pending_plan = excluded.pending_plan, state = excluded.state, usage_reporting_id = excluded.usage_reporting_id," +
		" update_time = excluded.update_time, parked = excluded.parked, parked_at = excluded.parked_at, cancel_time = excluded.cancel_time," +
		" offer = excluded.offer"
	return queries{
		schema:          schema,
		migrationsTable: r.Replace("{s}.schema_migrations"),

		markProcessed:  r.Replace("INSERT INTO {s}.processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING"),
		isProcessed:    r.Replace("SELECT EXISTS (SELECT 1 FROM {s}.processed_events WHERE event_id = $1)"),
		pruneProcessed: r.Replace("DELETE FROM {s}.processed_events WHERE processed_at < $1"),

		getAccount: r.Replace("SELECT " + accountColumns + " FROM {s}.accounts WHERE id = $1"),
		putAccount: r.Replace("INSERT INTO {s}.accounts (" + accountColumns + ") VALUES ($1, $2, $3, $4, $5, $6)" +
			" ON CONFLICT (id) DO UPDATE SET signup_approved = excluded.signup_approved, vendor_user_id = excluded.vendor_user_id," +
			" user_identity = excluded.user_identity, update_time = excluded.update_time, created_at = excluded.created_at"),
		deleteAccount: r.Replace("DELETE FROM {s}.accounts WHERE id = $1"),
		listAccounts:  r.Replace("SELECT " + accountColumns + " FROM {s}.accounts ORDER BY id"),

		getEntitlement: r.Replace("SELECT " + entitlementColumns + " FROM {s}.entitlements WHERE id = $1"),
		putEntitlement: r.Replace(upsertEntitlement),
		// The updateTime guard. ON CONFLICT locks the existing row and
		// evaluates the WHERE on its latest committed version, so two
		// replicas advancing one entitlement cannot both win with stale
		// reads; no row is reported when the guard refuses.
		advanceEntitlement: r.Replace(upsertEntitlement + " WHERE e.update_time < excluded.update_time"),
		deleteEntitlement:  r.Replace("DELETE FROM {s}.entitlements WHERE id = $1"),
		listEntitlements:   r.Replace("SELECT " + entitlementColumns + " FROM {s}.entitlements"),

		// On conflict the row keeps its seq (its place in the queue).
		enqueueApproval: r.Replace("INSERT INTO {s}.approval_queue (entitlement_id, kind, account_id, plan, requested_at) VALUES ($1, $2, $3, $4, $5)" +
			" ON CONFLICT (entitlement_id, kind) DO UPDATE SET account_id = excluded.account_id, plan = excluded.plan," +
			" requested_at = excluded.requested_at RETURNING seq"),
		getApproval:    r.Replace("SELECT " + approvalColumns + " FROM {s}.approval_queue WHERE entitlement_id = $1 AND kind = $2"),
		listApprovals:  r.Replace("SELECT " + approvalColumns + " FROM {s}.approval_queue ORDER BY seq"),
		deleteApproval: r.Replace("DELETE FROM {s}.approval_queue WHERE entitlement_id = $1 AND kind = $2"),

		recordPoison: r.Replace("INSERT INTO {s}.poison_messages (message_id, event_id, reason, data, at) VALUES ($1, $2, $3, $4, $5)"),
		deletePoison: r.Replace("DELETE FROM {s}.poison_messages WHERE message_id = $1"),
		// LIMIT NULL is no limit.
		listPoison: r.Replace("SELECT message_id, event_id, reason, data, at FROM {s}.poison_messages ORDER BY at DESC, id DESC LIMIT $1"),

		appendTransition: r.Replace("INSERT INTO {s}.entitlement_transitions (" + transitionInsertColumns + ")" +
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
		deleteTransitions: r.Replace("DELETE FROM {s}.entitlement_transitions WHERE account_id = $1"),
		listTransitions:   r.Replace("SELECT " + transitionColumns + " FROM {s}.entitlement_transitions"),
	}
}

// tx is the marketplace.Tx of one InTx call. Its mutex keeps a Tx that
// escaped to another goroutine from using the connection concurrently.
type tx struct {
	s    *Store
	pgtx pgx.Tx

	mu     sync.Mutex
	done   bool
	failed error               // first statement error: PostgreSQL has aborted the transaction
	locked map[string]struct{} // keys locked by this transaction
}

// end marks the transaction over and returns the first statement error.
func (t *tx) end() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	return t.failed
}

// enter starts a Tx method: on success t.mu is held and the caller must
// unlock it. The checks fail before anything is sent, so such an error
// leaves the transaction usable.
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
		return checkText(ids...)
	}()
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return nil
}

// fail records a statement error, which aborts the transaction in
// PostgreSQL (a query without rows does not), and translates it.
func (t *tx) fail(err error) error {
	if t.failed == nil && !errors.Is(err, pgx.ErrNoRows) {
		t.failed = err
	}
	return interpretError(err)
}

// checkText rejects strings PostgreSQL text cannot hold (NUL, invalid
// UTF-8) before they reach the server, where the error would abort the
// transaction.
func checkText(ss ...string) error { return invalid(marketplace.ErrInvalid, badText(ss...)) }

// checkTime rejects times outside the years 1 to 9999, the range every store
// of this module accepts.
func checkTime(ts ...time.Time) error { return invalid(marketplace.ErrInvalid, badTime(ts...)) }

// invalid wraps a validation failure, if any, with the caller's sentinel
// (marketplace.ErrInvalid or usage.ErrInvalid).
func invalid(sentinel, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

func badText(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("text %.32q is not valid UTF-8 without NUL bytes", s)
		}
	}
	return nil
}

func badTime(ts ...time.Time) error {
	for _, t := range ts {
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return fmt.Errorf("time %v outside years 1 to 9999", t)
		}
	}
	return nil
}

// cleanText makes s storable as text, for diagnostic fields that must be
// recorded whatever they hold.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func (t *tx) Lock(ctx context.Context, key string) error {
	if err := t.enter(ctx, "lock", key); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, ok := t.locked[key]; ok {
		return nil
	}
	if _, err := t.pgtx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", t.s.lockID(nsTx, key)); err != nil {
		return fmt.Errorf("pgstore: lock %q: %w", key, t.fail(err))
	}
	if t.locked == nil {
		t.locked = make(map[string]struct{})
	}
	t.locked[key] = struct{}{}
	return nil
}

func (t *tx) MarkProcessed(ctx context.Context, eventID string, at time.Time) (bool, error) {
	if err := t.enter(ctx, "mark processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	if err := checkTime(at); err != nil {
		return false, fmt.Errorf("pgstore: mark processed %q: %w", eventID, err)
	}
	// A concurrent transaction inserting the same id makes this one wait
	// for its end: then DO NOTHING if it committed, insert if it did not.
	tag, err := t.pgtx.Exec(ctx, t.s.q.markProcessed, eventID, at)
	if err != nil {
		return false, fmt.Errorf("pgstore: mark processed %q: %w", eventID, t.fail(err))
	}
	return tag.RowsAffected() == 1, nil
}

func (t *tx) IsProcessed(ctx context.Context, eventID string) (bool, error) {
	if err := t.enter(ctx, "is processed", eventID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	var done bool
	if err := t.pgtx.QueryRow(ctx, t.s.q.isProcessed, eventID).Scan(&done); err != nil {
		return false, fmt.Errorf("pgstore: is processed %q: %w", eventID, t.fail(err))
	}
	return done, nil
}

func (t *tx) PruneProcessed(ctx context.Context, before time.Time) (int, error) {
	if err := t.enter(ctx, "prune processed"); err != nil {
		return 0, err
	}
	defer t.mu.Unlock()
	if err := checkTime(before); err != nil {
		return 0, fmt.Errorf("pgstore: prune processed: %w", err)
	}
	tag, err := t.pgtx.Exec(ctx, t.s.q.pruneProcessed, before)
	if err != nil {
		return 0, fmt.Errorf("pgstore: prune processed before %v: %w", before, t.fail(err))
	}
	return int(tag.RowsAffected()), nil
}

func scanAccount(row pgx.Row) (marketplace.Account, error) {
	var a marketplace.Account
	err := row.Scan(&a.ID, &a.SignupApproved, &a.VendorUserID, &a.UserIdentity, &a.UpdateTime, &a.CreatedAt)
	a.UpdateTime, a.CreatedAt = a.UpdateTime.UTC(), a.CreatedAt.UTC()
	return a, err
}

func (t *tx) GetAccount(ctx context.Context, id string) (marketplace.Account, error) {
	if err := t.enter(ctx, "get account", id); err != nil {
		return marketplace.Account{}, err
	}
	defer t.mu.Unlock()
	a, err := scanAccount(t.pgtx.QueryRow(ctx, t.s.q.getAccount, id))
	if err != nil {
		return marketplace.Account{}, fmt.Errorf("pgstore: get account %q: %w", id, t.fail(err))
	}
	return a, nil
}

func (t *tx) PutAccount(ctx context.Context, a marketplace.Account) error {
	if err := t.enter(ctx, "put account", a.ID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if err := errors.Join(checkText(a.VendorUserID, a.UserIdentity), checkTime(a.UpdateTime, a.CreatedAt)); err != nil {
		return fmt.Errorf("pgstore: put account %q: %w", a.ID, err)
	}
	if _, err := t.pgtx.Exec(ctx, t.s.q.putAccount, a.ID, a.SignupApproved, a.VendorUserID, a.UserIdentity, a.UpdateTime, a.CreatedAt); err != nil {
		return fmt.Errorf("pgstore: put account %q: %w", a.ID, t.fail(err))
	}
	return nil
}

func (t *tx) DeleteAccount(ctx context.Context, id string) error {
	if err := t.enter(ctx, "delete account", id); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.pgtx.Exec(ctx, t.s.q.deleteAccount, id); err != nil {
		return fmt.Errorf("pgstore: delete account %q: %w", id, t.fail(err))
	}
	if _, err := t.pgtx.Exec(ctx, t.s.q.deleteTransitions, id); err != nil {
		return fmt.Errorf("pgstore: delete account %q: its history: %w", id, t.fail(err))
	}
	return nil
}

func (t *tx) ListAccounts(ctx context.Context) ([]marketplace.Account, error) {
	if err := t.enter(ctx, "list accounts"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	out, err := collect(ctx, t.pgtx, t.s.q.listAccounts, nil, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list accounts: %w", t.fail(err))
	}
	return out, nil
}

func scanEntitlement(row pgx.Row) (marketplace.Entitlement, error) {
	var e marketplace.Entitlement
	err := row.Scan(&e.ID, &e.AccountID, &e.Product, &e.Plan, &e.PendingPlan, &e.State, &e.UsageReportingID,
		&e.UpdateTime, &e.Parked, &e.ParkedAt, &e.CancelTime, &e.Offer)
	e.UpdateTime, e.ParkedAt, e.CancelTime = e.UpdateTime.UTC(), e.ParkedAt.UTC(), e.CancelTime.UTC()
	return e, err
}

func entitlementArgs(e marketplace.Entitlement) ([]any, error) {
	if err := errors.Join(
		checkText(e.AccountID, e.Product, e.Plan, e.PendingPlan, string(e.State), e.UsageReportingID, e.Offer),
		checkTime(e.UpdateTime, e.ParkedAt, e.CancelTime),
	); err != nil {
		return nil, err
	}
	return []any{e.ID, e.AccountID, e.Product, e.Plan, e.PendingPlan, e.State, e.UsageReportingID,
		e.UpdateTime, e.Parked, e.ParkedAt, e.CancelTime, e.Offer}, nil
}

func (t *tx) GetEntitlement(ctx context.Context, id string) (marketplace.Entitlement, error) {
	if err := t.enter(ctx, "get entitlement", id); err != nil {
		return marketplace.Entitlement{}, err
	}
	defer t.mu.Unlock()
	e, err := scanEntitlement(t.pgtx.QueryRow(ctx, t.s.q.getEntitlement, id))
	if err != nil {
		return marketplace.Entitlement{}, fmt.Errorf("pgstore: get entitlement %q: %w", id, t.fail(err))
	}
	return e, nil
}

func (t *tx) PutEntitlement(ctx context.Context, e marketplace.Entitlement) error {
	if err := t.enter(ctx, "put entitlement", e.ID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	args, err := entitlementArgs(e)
	if err != nil {
		return fmt.Errorf("pgstore: put entitlement %q: %w", e.ID, err)
	}
	if _, err := t.pgtx.Exec(ctx, t.s.q.putEntitlement, args...); err != nil {
		return fmt.Errorf("pgstore: put entitlement %q: %w", e.ID, t.fail(err))
	}
	return nil
}

func (t *tx) AdvanceEntitlement(ctx context.Context, e marketplace.Entitlement) (bool, error) {
	if err := t.enter(ctx, "advance entitlement", e.ID); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	args, err := entitlementArgs(e)
	if err != nil {
		return false, fmt.Errorf("pgstore: advance entitlement %q: %w", e.ID, err)
	}
	tag, err := t.pgtx.Exec(ctx, t.s.q.advanceEntitlement, args...)
	if err != nil {
		return false, fmt.Errorf("pgstore: advance entitlement %q: %w", e.ID, t.fail(err))
	}
	return tag.RowsAffected() == 1, nil
}

func (t *tx) DeleteEntitlement(ctx context.Context, id string) error {
	if err := t.enter(ctx, "delete entitlement", id); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.pgtx.Exec(ctx, t.s.q.deleteEntitlement, id); err != nil {
		return fmt.Errorf("pgstore: delete entitlement %q: %w", id, t.fail(err))
	}
	return nil
}

func (t *tx) ListEntitlements(ctx context.Context, q marketplace.EntitlementQuery) ([]marketplace.Entitlement, error) {
	if err := t.enter(ctx, "list entitlements"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if err := checkText(q.AccountID, string(q.State)); err != nil {
		return nil, fmt.Errorf("pgstore: list entitlements: %w", err)
	}
	// Built per query (eight shapes, each cached) so that the planner can
	// use the account_id index or the partial index on parked rows.
	var where []string
	var args []any
	if q.AccountID != "" {
		args = append(args, q.AccountID)
		where = append(where, fmt.Sprintf("account_id = $%d", len(args)))
	}
	if q.State != "" {
		args = append(args, q.State)
		where = append(where, fmt.Sprintf("state = $%d", len(args)))
	}
	if q.ParkedOnly {
		where = append(where, "parked")
	}
	query := t.s.q.listEntitlements
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id"
	out, err := collect(ctx, t.pgtx, query, args, scanEntitlement)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list entitlements: %w", t.fail(err))
	}
	return out, nil
}

func scanApproval(row pgx.Row) (marketplace.ApprovalRequest, error) {
	var r marketplace.ApprovalRequest
	err := row.Scan(&r.EntitlementID, &r.Kind, &r.AccountID, &r.Plan, &r.RequestedAt, &r.Seq)
	r.RequestedAt = r.RequestedAt.UTC()
	return r, err
}

func (t *tx) EnqueueApproval(ctx context.Context, r marketplace.ApprovalRequest) (marketplace.ApprovalRequest, error) {
	if err := t.enter(ctx, "enqueue approval", r.EntitlementID, string(r.Kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	defer t.mu.Unlock()
	if err := errors.Join(checkText(r.AccountID, r.Plan), checkTime(r.RequestedAt)); err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("pgstore: enqueue approval %q/%s: %w", r.EntitlementID, r.Kind, err)
	}
	err := t.pgtx.QueryRow(ctx, t.s.q.enqueueApproval, r.EntitlementID, string(r.Kind), r.AccountID, r.Plan, r.RequestedAt).Scan(&r.Seq)
	if err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("pgstore: enqueue approval %q/%s: %w", r.EntitlementID, r.Kind, t.fail(err))
	}
	r.RequestedAt = r.RequestedAt.UTC().Truncate(time.Microsecond)
	return r, nil
}

func (t *tx) GetApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) (marketplace.ApprovalRequest, error) {
	if err := t.enter(ctx, "get approval", entitlementID, string(kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	defer t.mu.Unlock()
	r, err := scanApproval(t.pgtx.QueryRow(ctx, t.s.q.getApproval, entitlementID, string(kind)))
	if err != nil {
		return marketplace.ApprovalRequest{}, fmt.Errorf("pgstore: get approval %q/%s: %w", entitlementID, kind, t.fail(err))
	}
	return r, nil
}

func (t *tx) ListApprovals(ctx context.Context) ([]marketplace.ApprovalRequest, error) {
	if err := t.enter(ctx, "list approvals"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	out, err := collect(ctx, t.pgtx, t.s.q.listApprovals, nil, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list approvals: %w", t.fail(err))
	}
	return out, nil
}

func (t *tx) DeleteApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) error {
	if err := t.enter(ctx, "delete approval", entitlementID, string(kind)); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.pgtx.Exec(ctx, t.s.q.deleteApproval, entitlementID, string(kind)); err != nil {
		return fmt.Errorf("pgstore: delete approval %q/%s: %w", entitlementID, kind, t.fail(err))
	}
	return nil
}

// RecordPoison keeps the first marketplace.PoisonDataLimit bytes of p.Data.
// Text fields that PostgreSQL cannot store (invalid UTF-8, NUL) are kept
// with U+FFFD in place of the bad bytes: a poison message is recorded
// whatever it holds.
func (t *tx) RecordPoison(ctx context.Context, p marketplace.Poison) error {
	if err := t.enter(ctx, "record poison"); err != nil {
		return err
	}
	defer t.mu.Unlock()
	msgID := cleanText(p.MessageID)
	if err := checkTime(p.At); err != nil {
		return fmt.Errorf("pgstore: record poison %q: %w", msgID, err)
	}
	data := p.Data
	if len(data) > marketplace.PoisonDataLimit {
		data = data[:marketplace.PoisonDataLimit]
	}
	if data == nil {
		data = []byte{} // the column is NOT NULL
	}
	if _, err := t.pgtx.Exec(ctx, t.s.q.recordPoison, msgID, cleanText(p.EventID), cleanText(p.Reason), data, p.At); err != nil {
		return fmt.Errorf("pgstore: record poison %q: %w", msgID, t.fail(err))
	}
	return nil
}

func (t *tx) DeletePoison(ctx context.Context, messageID string) error {
	if err := t.enter(ctx, "delete poison", messageID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if _, err := t.pgtx.Exec(ctx, t.s.q.deletePoison, cleanText(messageID)); err != nil {
		return fmt.Errorf("pgstore: delete poison %q: %w", messageID, t.fail(err))
	}
	return nil
}

func (t *tx) ListPoison(ctx context.Context, limit int) ([]marketplace.Poison, error) {
	if err := t.enter(ctx, "list poison"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	var lim *int64 // NULL: no limit
	if limit > 0 {
		n := int64(limit)
		lim = &n
	}
	out, err := collect(ctx, t.pgtx, t.s.q.listPoison, []any{lim}, func(row pgx.Row) (marketplace.Poison, error) {
		var p marketplace.Poison
		err := row.Scan(&p.MessageID, &p.EventID, &p.Reason, &p.Data, &p.At)
		p.At = p.At.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list poison: %w", t.fail(err))
	}
	return out, nil
}

// collect runs a query and scans every row; the result is never nil.
func collect[T any](ctx context.Context, q pgx.Tx, query string, args []any, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
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
