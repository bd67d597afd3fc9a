package sqlitestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

var _ agent.Store = (*Store)(nil)

const (
	orderColumns   = "order_id, account_id, entitlement_id, usage_reporting_id, client_id, redirect_uris, sealed_secret, created_at, revoked_at"
	sqlInsertOrder = "INSERT INTO agent_orders (" + orderColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)" +
		" ON CONFLICT (order_id) DO NOTHING"
	sqlGetOrder         = "SELECT " + orderColumns + " FROM agent_orders WHERE order_id = ?"
	sqlGetOrderByClient = "SELECT " + orderColumns + " FROM agent_orders WHERE client_id = ?"
	sqlListOrders       = "SELECT " + orderColumns + " FROM agent_orders" +
		" WHERE (?1 = '' OR account_id = ?1) AND (?2 = '' OR entitlement_id = ?2) ORDER BY order_id"
	// revoked_at holds the zero time until revoked; the first revocation stays.
	sqlRevokeOrder  = "UPDATE agent_orders SET revoked_at = ?2 WHERE order_id = ?1 AND revoked_at = ?3"
	sqlOrderExists  = "SELECT count(*) FROM agent_orders WHERE order_id = ?"
	sqlDeleteOrders = "DELETE FROM agent_orders WHERE account_id = ?"
)

// InsertOrder implements agent.Store, as one transaction of the group
// commit: the primary key makes exactly one of concurrent callers insert.
func (s *Store) InsertOrder(ctx context.Context, r agent.OrderRecord) (agent.OrderRecord, bool, error) {
	const op = "insert order"
	if r.ID == "" || r.ClientID == "" {
		return agent.OrderRecord{}, false, fmt.Errorf("sqlitestore: %s: empty order or client id: %w", op, marketplace.ErrInvalid)
	}
	uris, err := json.Marshal(nonNil(r.RedirectURIs))
	if err != nil {
		return agent.OrderRecord{}, false, fmt.Errorf("sqlitestore: %s %q: %w", op, r.ID, err)
	}
	ts, err := encodeTimes(r.CreatedAt, r.RevokedAt)
	if err != nil {
		return agent.OrderRecord{}, false, fmt.Errorf("sqlitestore: %s %q: %w", op, r.ID, err)
	}
	var stored agent.OrderRecord
	inserted := false
	err = s.ledgerTx(ctx, op, func(t *tx) error {
		res, err := t.ledgerExec(sqlInsertOrder, r.ID, r.AccountID, r.EntitlementID, r.UsageReportingID, r.ClientID,
			string(uris), nonNilBytes(r.SealedSecret), ts[0], ts[1])
		if err != nil {
			return fmt.Errorf("sqlitestore: %s %q: %w", op, r.ID, orderError(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlitestore: %s %q: %w", op, r.ID, err)
		}
		inserted = n == 1
		stored, err = t.queryOrder(sqlGetOrder, r.ID)
		if err != nil {
			return fmt.Errorf("sqlitestore: %s %q: reading it back: %w", op, r.ID, err)
		}
		return nil
	})
	return stored, inserted, err
}

// GetOrder implements agent.Store.
func (s *Store) GetOrder(ctx context.Context, orderID string) (agent.OrderRecord, error) {
	return s.getOrder(ctx, "get order", sqlGetOrder, orderID)
}

// GetOrderByClient implements agent.Store.
func (s *Store) GetOrderByClient(ctx context.Context, clientID string) (agent.OrderRecord, error) {
	return s.getOrder(ctx, "get order by client", sqlGetOrderByClient, clientID)
}

func (s *Store) getOrder(ctx context.Context, op, query, key string) (agent.OrderRecord, error) {
	var out agent.OrderRecord
	err := s.ledgerTx(ctx, op, func(t *tx) error {
		var err error
		if out, err = t.queryOrder(query, key); err != nil {
			return fmt.Errorf("sqlitestore: %s %q: %w", op, key, err)
		}
		return nil
	})
	return out, err
}

// ListOrders implements agent.Store.
func (s *Store) ListOrders(ctx context.Context, q agent.OrderQuery) ([]agent.OrderRecord, error) {
	var out []agent.OrderRecord
	err := s.ledgerTx(ctx, "list orders", func(t *tx) error {
		rows, err := t.ledgerQuery(sqlListOrders, q.AccountID, q.EntitlementID)
		if err == nil {
			out, err = collect(rows, scanOrder)
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: list orders: %w", interpretError(err))
		}
		return nil
	})
	return out, err
}

// RevokeOrder implements agent.Store.
func (s *Store) RevokeOrder(ctx context.Context, orderID string, at time.Time) error {
	const op = "revoke order"
	if at.IsZero() {
		return fmt.Errorf("sqlitestore: %s %q: zero time: %w", op, orderID, marketplace.ErrInvalid)
	}
	ts, err := encodeTimes(at, time.Time{})
	if err != nil {
		return fmt.Errorf("sqlitestore: %s %q: %w", op, orderID, err)
	}
	return s.ledgerTx(ctx, op, func(t *tx) error {
		if _, err := t.ledgerExec(sqlRevokeOrder, orderID, ts[0], ts[1]); err != nil {
			return fmt.Errorf("sqlitestore: %s %q: %w", op, orderID, interpretError(err))
		}
		rows, err := t.ledgerQuery(sqlOrderExists, orderID)
		if err == nil {
			var counts []int
			counts, err = collect(rows, func(row scanner) (n int, err error) { return n, row.Scan(&n) })
			if err == nil && counts[0] == 0 {
				err = marketplace.ErrNotFound
			}
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: %s %q: %w", op, orderID, interpretError(err))
		}
		return nil
	})
}

// DeleteOrders implements agent.Store.
func (s *Store) DeleteOrders(ctx context.Context, accountID string) (int, error) {
	n := 0
	err := s.ledgerTx(ctx, "delete orders", func(t *tx) error {
		res, err := t.ledgerExec(sqlDeleteOrders, accountID)
		if err != nil {
			return fmt.Errorf("sqlitestore: delete orders of %q: %w", accountID, interpretError(err))
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}

// queryOrder reads one order, or marketplace.ErrNotFound.
func (t *tx) queryOrder(query, key string) (agent.OrderRecord, error) {
	rows, err := t.ledgerQuery(query, key)
	if err != nil {
		return agent.OrderRecord{}, interpretError(err)
	}
	list, err := collect(rows, scanOrder)
	if err != nil {
		return agent.OrderRecord{}, interpretError(err)
	}
	if len(list) == 0 {
		return agent.OrderRecord{}, marketplace.ErrNotFound
	}
	return list[0], nil
}

func scanOrder(row scanner) (agent.OrderRecord, error) {
	var r agent.OrderRecord
	var uris, created, revoked string
	if err := row.Scan(&r.ID, &r.AccountID, &r.EntitlementID, &r.UsageReportingID, &r.ClientID,
		&uris, &r.SealedSecret, &created, &revoked); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(uris), &r.RedirectURIs); err != nil {
		return r, fmt.Errorf("order %q: stored redirect URIs: %w", r.ID, err)
	}
	var err error
	if r.CreatedAt, err = decodeTime(created); err != nil {
		return r, err
	}
	if r.RevokedAt, err = decodeTime(revoked); err != nil {
		return r, err
	}
	if r.RevokedAt.IsZero() {
		r.RevokedAt = time.Time{}
	}
	return r, nil
}

// orderError reports another order's client id as marketplace.ErrInvalid.
func orderError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return fmt.Errorf("the client id belongs to another order: %w: %w", marketplace.ErrInvalid, err)
	}
	return interpretError(err)
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
