package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func sortWindows(ws []ledger.Window) {
	slices.SortFunc(ws, func(a, b ledger.Window) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.OperationID, b.OperationID))
	})
}

// limitArg is a LIMIT parameter: NULL (no limit) for n <= 0.
func limitArg(n int) *int64 {
	if n <= 0 {
		return nil
	}
	l := int64(n)
	return &l
}

// ClaimWindows implements ledger.Ledger with FOR UPDATE SKIP LOCKED: windows
// another replica is claiming at the same moment are skipped, not waited
// for, and a window is claimable again once its lease has expired.
func (s *Store) ClaimWindows(ctx context.Context, p ledger.ClaimParams) ([]ledger.Window, error) {
	if err := errors.Join(badText(p.Owner), badTime(p.Now, p.LeaseUntil)); err != nil {
		return nil, fmt.Errorf("pgstore: claim windows: %w", invalid(ledger.ErrInvalid, err))
	}
	var out []ledger.Window
	err := s.ledgerTx(ctx, "claim windows", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = collect(ctx, tx, s.lq.claim, []any{p.Owner, p.LeaseUntil, p.Now, limitArg(p.Limit)}, scanWindow)
		if err != nil {
			return fmt.Errorf("pgstore: claim windows for %q: %w", p.Owner, interpretError(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortWindows(out)
	return out, nil
}

// UpdateWindows implements ledger.Ledger. The updates travel in one batch.
func (s *Store) UpdateWindows(ctx context.Context, owner string, updates []ledger.WindowUpdate) ([]string, error) {
	if err := badText(owner); err != nil {
		return nil, fmt.Errorf("pgstore: update windows: %w", invalid(ledger.ErrInvalid, err))
	}
	for _, u := range updates {
		if u.OperationID == "" {
			return nil, fmt.Errorf("pgstore: update windows: empty operation id: %w", ledger.ErrInvalid)
		}
		if err := errors.Join(badText(u.OperationID, string(u.State)), badTime(u.LastAttempt, u.ReportedAt, u.LeaseUntil)); err != nil {
			return nil, fmt.Errorf("pgstore: update window %.64q: %w", u.OperationID, invalid(ledger.ErrInvalid, err))
		}
	}
	var lost []string
	err := s.ledgerTx(ctx, "update windows", func(ctx context.Context, tx pgx.Tx) error {
		lost = nil
		if len(updates) == 0 {
			return nil
		}
		batch := &pgx.Batch{}
		for _, u := range updates {
			batch.Queue(s.lq.updateWindow, u.OperationID, string(u.State), cleanText(u.Reason), u.Attempts,
				u.LastAttempt, u.ReportedAt, u.LeaseUntil, owner, u.LeaseToken)
		}
		br := tx.SendBatch(ctx, batch)
		for _, u := range updates {
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return fmt.Errorf("pgstore: update window %s: %w", u.OperationID, interpretError(err))
			}
			if tag.RowsAffected() == 0 {
				lost = append(lost, u.OperationID)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("pgstore: update windows: %w", interpretError(err))
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
		states := make([]string, len(q.States))
		for i, st := range q.States {
			states[i] = string(st)
		}
		args = append(args, states)
		where = append(where, fmt.Sprintf("state = ANY($%d)", len(args)))
	}
	if q.EntitlementID != "" {
		args = append(args, q.EntitlementID)
		where = append(where, fmt.Sprintf("entitlement_id = $%d", len(args)))
	}
	if q.OperationID != "" {
		args = append(args, q.OperationID)
		where = append(where, fmt.Sprintf("operation_id = $%d", len(args)))
	}
	if !q.From.IsZero() {
		args = append(args, q.From)
		where = append(where, fmt.Sprintf("start_time >= $%d", len(args)))
	}
	if !q.To.IsZero() {
		args = append(args, q.To)
		where = append(where, fmt.Sprintf("start_time < $%d", len(args)))
	}
	if !q.After.IsZero() {
		args = append(args, q.After.Start, q.After.OperationID)
		where = append(where, fmt.Sprintf("(start_time, operation_id) > ($%d, $%d)", len(args)-1, len(args)))
	}
	if err := errors.Join(badText(q.EntitlementID, q.OperationID, q.After.OperationID), badTime(q.From, q.To, q.After.Start)); err != nil {
		return nil, fmt.Errorf("pgstore: list windows: %w", invalid(ledger.ErrInvalid, err))
	}
	query := s.lq.listWindows
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limitArg(q.Limit))
	query += fmt.Sprintf(" ORDER BY start_time, operation_id LIMIT $%d", len(args))
	var out []ledger.Window
	err := s.ledgerTx(ctx, "list windows", func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if out, err = collect(ctx, tx, query, args, scanWindow); err != nil {
			return fmt.Errorf("pgstore: list windows: %w", interpretError(err))
		}
		return nil
	})
	return out, err
}

// PruneWindows implements ledger.Ledger.
func (s *Store) PruneWindows(ctx context.Context, before time.Time) (int, error) {
	if err := badTime(before); err != nil {
		return 0, fmt.Errorf("pgstore: prune windows: %w", invalid(ledger.ErrInvalid, err))
	}
	n := 0
	err := s.ledgerTx(ctx, "prune windows", func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.lq.pruneWindows, before)
		if err != nil {
			return fmt.Errorf("pgstore: prune windows before %v: %w", before, interpretError(err))
		}
		n = int(tag.RowsAffected())
		return nil
	})
	return n, err
}
