package sqlitestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func sortWindows(ws []ledger.Window) {
	slices.SortFunc(ws, func(a, b ledger.Window) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.OperationID, b.OperationID))
	})
}

// ClaimWindows implements ledger.Ledger.
func (s *Store) ClaimWindows(ctx context.Context, p ledger.ClaimParams) ([]ledger.Window, error) {
	ts, err := encodeTimes(p.LeaseUntil, p.Now)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: claim windows: %w", err)
	}
	limit := int64(p.Limit)
	if limit <= 0 {
		limit = -1
	}
	var out []ledger.Window
	err = s.ledgerTx(ctx, "claim windows", func(t *tx) error {
		rows, err := t.ledgerQuery(sqlClaim, p.Owner, ts[0], ts[1], limit)
		if err != nil {
			return fmt.Errorf("sqlitestore: claim windows: %w", interpretError(err))
		}
		if out, err = collect(rows, scanWindow); err != nil {
			return fmt.Errorf("sqlitestore: claim windows: %w", interpretError(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortWindows(out)
	return out, nil
}

// UpdateWindows implements ledger.Ledger.
func (s *Store) UpdateWindows(ctx context.Context, owner string, updates []ledger.WindowUpdate) ([]string, error) {
	type encoded struct {
		u  ledger.WindowUpdate
		ts []string
	}
	enc := make([]encoded, len(updates))
	for i, u := range updates {
		if u.OperationID == "" {
			return nil, fmt.Errorf("sqlitestore: update windows: empty operation id: %w", ledger.ErrInvalid)
		}
		ts, err := encodeTimes(u.LastAttempt, u.ReportedAt, u.LeaseUntil)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: update window %s: %w", u.OperationID, err)
		}
		enc[i] = encoded{u, ts}
	}
	var lost []string
	err := s.ledgerTx(ctx, "update windows", func(t *tx) error {
		lost = nil
		for _, e := range enc {
			res, err := t.ledgerExec(sqlUpdateWindow, string(e.u.State), e.u.Reason, e.u.Attempts, e.ts[0], e.ts[1], e.ts[2], e.u.OperationID, owner, e.u.LeaseToken)
			if err != nil {
				return fmt.Errorf("sqlitestore: update window %s: %w", e.u.OperationID, interpretError(err))
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlitestore: update window %s: %w", e.u.OperationID, err)
			}
			if n == 0 {
				lost = append(lost, e.u.OperationID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lost, nil
}

// ListWindows implements ledger.Ledger.
func (s *Store) ListWindows(ctx context.Context, q ledger.WindowQuery) ([]ledger.Window, error) {
	var where []string
	var args []any
	if q.States != nil {
		if len(q.States) == 0 {
			return []ledger.Window{}, nil
		}
		ph := make([]string, len(q.States))
		for i, st := range q.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if q.EntitlementID != "" {
		where = append(where, "entitlement_id = ?")
		args = append(args, q.EntitlementID)
	}
	if q.OperationID != "" {
		where = append(where, "operation_id = ?")
		args = append(args, q.OperationID)
	}
	bounds, err := windowBounds(q)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list windows: %w", err)
	}
	where, args = append(where, bounds.where...), append(args, bounds.args...)
	query := "SELECT " + windowColumns + " FROM usage_windows"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start_time, operation_id"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	var out []ledger.Window
	err = s.ledgerTx(ctx, "list windows", func(t *tx) error {
		rows, err := t.s.conn.QueryContext(stmtCtx, query, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: list windows: %w", interpretError(err))
		}
		if out, err = collect(rows, scanWindow); err != nil {
			return fmt.Errorf("sqlitestore: list windows: %w", interpretError(err))
		}
		return nil
	})
	return out, err
}

// windowBounds is the SQL of q's time range and cursor. Times are stored
// as fixed-width text, so text order is time order.
func windowBounds(q ledger.WindowQuery) (sqlWhere, error) {
	var b sqlWhere
	add := func(cond string, t time.Time, more ...any) error {
		ts, err := encodeTime(t)
		if err != nil {
			return fmt.Errorf("%w: %w", ledger.ErrInvalid, err)
		}
		b.where, b.args = append(b.where, cond), append(append(b.args, ts), more...)
		return nil
	}
	var errs []error
	if !q.From.IsZero() {
		errs = append(errs, add("start_time >= ?", q.From))
	}
	if !q.To.IsZero() {
		errs = append(errs, add("start_time < ?", q.To))
	}
	if !q.After.IsZero() {
		errs = append(errs, add("(start_time, operation_id) > (?, ?)", q.After.Start, q.After.OperationID))
	}
	return b, errors.Join(errs...)
}

// PruneWindows implements ledger.Ledger.
func (s *Store) PruneWindows(ctx context.Context, before time.Time) (int, error) {
	ts, err := encodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune windows: %w", err)
	}
	n := 0
	err = s.ledgerTx(ctx, "prune windows", func(t *tx) error {
		res, err := t.ledgerExec(sqlPruneWindows, ts)
		if err != nil {
			return fmt.Errorf("sqlitestore: prune windows: %w", interpretError(err))
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}
