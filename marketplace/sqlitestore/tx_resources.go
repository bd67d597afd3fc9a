package sqlitestore

// This file holds the Tx methods of accounts and entitlements.

import (
	"context"
	"fmt"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

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
	if _, err := t.s.stmts.deleteTransitions.ExecContext(stmtCtx, id); err != nil {
		return fmt.Errorf("sqlitestore: delete account %q: its history: %w", id, interpretError(err))
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
