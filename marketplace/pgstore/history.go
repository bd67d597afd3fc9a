package pgstore

// This file holds the Tx methods of the entitlements' history.

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

const (
	transitionInsertColumns = "entitlement_id, account_id, at, change, from_state, to_state, from_plan, to_plan, source, event_id"
	transitionColumns       = "seq, " + transitionInsertColumns
)

func scanTransition(row pgx.Row) (marketplace.Transition, error) {
	var tr marketplace.Transition
	err := row.Scan(&tr.Seq, &tr.EntitlementID, &tr.AccountID, &tr.At, &tr.Change, &tr.FromState, &tr.ToState,
		&tr.FromPlan, &tr.ToPlan, &tr.Source, &tr.EventID)
	tr.At = tr.At.UTC()
	return tr, err
}

func (t *tx) AppendTransition(ctx context.Context, tr marketplace.Transition) error {
	if err := t.enter(ctx, "append transition", tr.EntitlementID); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if err := checkTime(tr.At); err != nil {
		return fmt.Errorf("pgstore: append transition of %q: %w", tr.EntitlementID, err)
	}
	_, err := t.pgtx.Exec(ctx, t.s.q.appendTransition, tr.EntitlementID, cleanText(tr.AccountID), tr.At, cleanText(string(tr.Change)),
		cleanText(string(tr.FromState)), cleanText(string(tr.ToState)), cleanText(tr.FromPlan), cleanText(tr.ToPlan),
		cleanText(tr.Source), cleanText(tr.EventID))
	if err != nil {
		return fmt.Errorf("pgstore: append transition of %q: %w", tr.EntitlementID, t.fail(err))
	}
	return nil
}

func (t *tx) ListTransitions(ctx context.Context, q marketplace.HistoryQuery) ([]marketplace.Transition, error) {
	if err := t.enter(ctx, "list transitions"); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if err := checkText(q.AccountID, q.EntitlementID); err != nil {
		return nil, fmt.Errorf("pgstore: list transitions: %w", err)
	}
	// Built per query (eight shapes, each cached) so that the planner
	// uses the index of the id given. The newest Limit are selected newest
	// first, then put back in order.
	var where []string
	var args []any
	if q.AccountID != "" {
		args = append(args, q.AccountID)
		where = append(where, fmt.Sprintf("account_id = $%d", len(args)))
	}
	if q.EntitlementID != "" {
		args = append(args, q.EntitlementID)
		where = append(where, fmt.Sprintf("entitlement_id = $%d", len(args)))
	}
	query := t.s.q.listTransitions
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if q.Limit > 0 {
		args = append(args, q.Limit)
		query = fmt.Sprintf("SELECT * FROM (%s ORDER BY seq DESC LIMIT $%d) AS newest", query, len(args))
	}
	query += " ORDER BY seq"
	out, err := collect(ctx, t.pgtx, query, args, scanTransition)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list transitions: %w", t.fail(err))
	}
	return out, nil
}
