package sqlitestore

// This file holds the statements the writer prepares once, and the
// encoding of times in stored rows.

import (
	"context"
	"database/sql"
	"fmt"
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
	appendTransition, deleteTransitions                   *sql.Stmt
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

	prep(&st.appendTransition, "INSERT INTO entitlement_transitions ("+transitionInsertColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	prep(&st.deleteTransitions, "DELETE FROM entitlement_transitions WHERE account_id = ?")
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
		st.appendTransition, st.deleteTransitions,
	} {
		if s != nil {
			_ = s.Close()
		}
	}
	for _, s := range st.reads {
		_ = s.Close()
	}
}
