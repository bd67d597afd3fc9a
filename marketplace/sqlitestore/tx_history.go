package sqlitestore

// This file holds the Tx methods of the entitlements' history.

import (
	"context"
	"fmt"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

const (
	transitionInsertColumns = "entitlement_id, account_id, at, change, from_state, to_state, from_plan, to_plan, source, event_id"
	transitionColumns       = "seq, " + transitionInsertColumns
)

func scanTransition(row scanner) (marketplace.Transition, error) {
	var tr marketplace.Transition
	var at string
	if err := row.Scan(&tr.Seq, &tr.EntitlementID, &tr.AccountID, &at, &tr.Change, &tr.FromState, &tr.ToState,
		&tr.FromPlan, &tr.ToPlan, &tr.Source, &tr.EventID); err != nil {
		return tr, err
	}
	var err error
	tr.At, err = decodeTime(at)
	return tr, err
}

func (t *tx) AppendTransition(ctx context.Context, tr marketplace.Transition) error {
	if err := t.enterWrite(ctx, "append transition", tr.EntitlementID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	at, err := encodeTime(tr.At)
	if err != nil {
		return fmt.Errorf("sqlitestore: append transition of %q: %w", tr.EntitlementID, err)
	}
	_, err = t.s.stmts.appendTransition.ExecContext(stmtCtx, tr.EntitlementID, tr.AccountID, at, string(tr.Change),
		string(tr.FromState), string(tr.ToState), tr.FromPlan, tr.ToPlan, tr.Source, tr.EventID)
	if err != nil {
		return fmt.Errorf("sqlitestore: append transition of %q: %w", tr.EntitlementID, interpretError(err))
	}
	return nil
}

func (t *tx) ListTransitions(ctx context.Context, q marketplace.HistoryQuery) ([]marketplace.Transition, error) {
	if err := t.enter(ctx, "list transitions"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// Built per query, as ListEntitlements, so that SQLite uses the index
	// of the id given. The newest Limit are selected newest first, then
	// put back in order.
	var where []string
	var args []any
	if q.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, q.AccountID)
	}
	if q.EntitlementID != "" {
		where = append(where, "entitlement_id = ?")
		args = append(args, q.EntitlementID)
	}
	query := "SELECT " + transitionColumns + " FROM entitlement_transitions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if q.Limit > 0 {
		query = "SELECT * FROM (" + query + " ORDER BY seq DESC LIMIT ?)"
		args = append(args, q.Limit)
	}
	query += " ORDER BY seq"
	rows, err := t.reads().query(query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list transitions: %w", interpretError(err))
	}
	out, err := collect(rows, scanTransition)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list transitions: %w", interpretError(err))
	}
	return out, nil
}
