package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

var _ agent.Store = (*Store)(nil)

const orderColumns = "order_id, account_id, entitlement_id, usage_reporting_id, client_id, redirect_uris, sealed_secret, created_at, revoked_at"

func (s *Store) ordersTable() string { return pgx.Identifier{s.schema, "agent_orders"}.Sanitize() }

// InsertOrder implements agent.Store. Under READ COMMITTED, an insert
// meeting a concurrent one's uncommitted row waits for it, then does
// nothing; the read back, a new snapshot, sees the winner's row.
func (s *Store) InsertOrder(ctx context.Context, r agent.OrderRecord) (agent.OrderRecord, bool, error) {
	const op = "insert order"
	if r.ID == "" || r.ClientID == "" {
		return agent.OrderRecord{}, false, fmt.Errorf("pgstore: %s: empty order or client id: %w", op, marketplace.ErrInvalid)
	}
	if err := checkText(append([]string{r.ID, r.AccountID, r.EntitlementID, r.UsageReportingID, r.ClientID}, r.RedirectURIs...)...); err != nil {
		return agent.OrderRecord{}, false, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := checkTime(r.CreatedAt, r.RevokedAt); err != nil {
		return agent.OrderRecord{}, false, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	uris := r.RedirectURIs
	if uris == nil {
		uris = []string{}
	}
	secret := r.SealedSecret
	if secret == nil {
		secret = []byte{}
	}
	var stored agent.OrderRecord
	inserted := false
	err := s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO "+s.ordersTable()+" ("+orderColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"+
			" ON CONFLICT (order_id) DO NOTHING",
			r.ID, r.AccountID, r.EntitlementID, r.UsageReportingID, r.ClientID, uris, secret, r.CreatedAt, nullTime(r.RevokedAt))
		if err != nil {
			return fmt.Errorf("pgstore: %s %q: %w", op, r.ID, orderError(err))
		}
		inserted = tag.RowsAffected() == 1
		if stored, err = scanOrder(tx.QueryRow(ctx, "SELECT "+orderColumns+" FROM "+s.ordersTable()+" WHERE order_id = $1", r.ID)); err != nil {
			return fmt.Errorf("pgstore: %s %q: reading it back: %w", op, r.ID, interpretError(err))
		}
		return nil
	})
	return stored, inserted, err
}

// GetOrder implements agent.Store.
func (s *Store) GetOrder(ctx context.Context, orderID string) (agent.OrderRecord, error) {
	return s.getOrder(ctx, "get order", "order_id", orderID)
}

// GetOrderByClient implements agent.Store.
func (s *Store) GetOrderByClient(ctx context.Context, clientID string) (agent.OrderRecord, error) {
	return s.getOrder(ctx, "get order by client", "client_id", clientID)
}

func (s *Store) getOrder(ctx context.Context, op, column, key string) (agent.OrderRecord, error) {
	if err := checkText(key); err != nil {
		return agent.OrderRecord{}, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	var out agent.OrderRecord
	err := s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = scanOrder(tx.QueryRow(ctx, "SELECT "+orderColumns+" FROM "+s.ordersTable()+" WHERE "+column+" = $1", key))
		if err != nil {
			return fmt.Errorf("pgstore: %s %q: %w", op, key, interpretError(err))
		}
		return nil
	})
	return out, err
}

// ListOrders implements agent.Store.
func (s *Store) ListOrders(ctx context.Context, q agent.OrderQuery) ([]agent.OrderRecord, error) {
	const op = "list orders"
	if err := checkText(q.AccountID, q.EntitlementID); err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	var out []agent.OrderRecord
	err := s.ledgerTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+orderColumns+" FROM "+s.ordersTable()+
			" WHERE ($1 = '' OR account_id = $1) AND ($2 = '' OR entitlement_id = $2) ORDER BY order_id", q.AccountID, q.EntitlementID)
		if err == nil {
			out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (agent.OrderRecord, error) { return scanOrder(row) })
		}
		if err != nil {
			return fmt.Errorf("pgstore: %s: %w", op, interpretError(err))
		}
		return nil
	})
	return out, err
}

// RevokeOrder implements agent.Store.
func (s *Store) RevokeOrder(ctx context.Context, orderID string, at time.Time) error {
	const op = "revoke order"
	if at.IsZero() {
		return fmt.Errorf("pgstore: %s %q: zero time: %w", op, orderID, marketplace.ErrInvalid)
	}
	if err := checkText(orderID); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	if err := checkTime(at); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	n, err := s.tokenExec(ctx, op, "UPDATE "+s.ordersTable()+" SET revoked_at = coalesce(revoked_at, $2) WHERE order_id = $1", orderID, at)
	if err == nil && n == 0 {
		err = fmt.Errorf("pgstore: %s %q: %w", op, orderID, marketplace.ErrNotFound)
	}
	return err
}

// DeleteOrders implements agent.Store.
func (s *Store) DeleteOrders(ctx context.Context, accountID string) (int, error) {
	const op = "delete orders"
	if err := checkText(accountID); err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	n, err := s.tokenExec(ctx, op, "DELETE FROM "+s.ordersTable()+" WHERE account_id = $1", accountID)
	return int(n), err
}

func scanOrder(row pgx.Row) (agent.OrderRecord, error) {
	var r agent.OrderRecord
	var revoked *time.Time
	if err := row.Scan(&r.ID, &r.AccountID, &r.EntitlementID, &r.UsageReportingID, &r.ClientID,
		&r.RedirectURIs, &r.SealedSecret, &r.CreatedAt, &revoked); err != nil {
		return r, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if revoked != nil {
		r.RevokedAt = revoked.UTC()
	}
	return r, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// orderError reports another order's client id as marketplace.ErrInvalid.
func orderError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("the client id belongs to another order: %w: %w", marketplace.ErrInvalid, err)
	}
	return interpretError(err)
}
