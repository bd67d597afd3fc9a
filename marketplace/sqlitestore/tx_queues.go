package sqlitestore

// This file holds the Tx methods of the approval queue and the poison
// messages.

import (
	"context"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

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
