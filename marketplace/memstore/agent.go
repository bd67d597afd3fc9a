package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

var _ agent.Store = (*Store)(nil)

// InsertOrder implements agent.Store. It waits for a running transaction,
// like InTx.
func (s *Store) InsertOrder(ctx context.Context, r agent.OrderRecord) (agent.OrderRecord, bool, error) {
	const op = "insert order"
	if r.ID == "" || r.ClientID == "" {
		return agent.OrderRecord{}, false, fmt.Errorf("memstore: %s: empty order or client id: %w", op, marketplace.ErrInvalid)
	}
	var stored agent.OrderRecord
	inserted := false
	err := s.orderOp(ctx, op, func() error {
		if old, ok := s.orders[r.ID]; ok {
			stored = cloneOrder(old)
			return nil
		}
		for _, o := range s.orders {
			if o.ClientID == r.ClientID {
				return fmt.Errorf("memstore: %s %q: client %q belongs to order %q: %w", op, r.ID, r.ClientID, o.ID, marketplace.ErrInvalid)
			}
		}
		if s.orders == nil {
			s.orders = make(map[string]agent.OrderRecord)
		}
		r = cloneOrder(r)
		r.CreatedAt, r.RevokedAt = r.CreatedAt.UTC(), r.RevokedAt.UTC()
		s.orders[r.ID] = r
		stored, inserted = cloneOrder(r), true
		return nil
	})
	return stored, inserted, err
}

// GetOrder implements agent.Store.
func (s *Store) GetOrder(ctx context.Context, orderID string) (agent.OrderRecord, error) {
	return s.findOrder(ctx, "get order", func(o agent.OrderRecord) bool { return o.ID == orderID }, orderID)
}

// GetOrderByClient implements agent.Store.
func (s *Store) GetOrderByClient(ctx context.Context, clientID string) (agent.OrderRecord, error) {
	return s.findOrder(ctx, "get order by client", func(o agent.OrderRecord) bool { return o.ClientID == clientID }, clientID)
}

func (s *Store) findOrder(ctx context.Context, op string, match func(agent.OrderRecord) bool, key string) (agent.OrderRecord, error) {
	var found agent.OrderRecord
	err := s.orderOp(ctx, op, func() error {
		for _, o := range s.orders {
			if match(o) {
				found = cloneOrder(o)
				return nil
			}
		}
		return fmt.Errorf("memstore: %s %q: %w", op, key, marketplace.ErrNotFound)
	})
	return found, err
}

// ListOrders implements agent.Store.
func (s *Store) ListOrders(ctx context.Context, q agent.OrderQuery) ([]agent.OrderRecord, error) {
	var out []agent.OrderRecord
	err := s.orderOp(ctx, "list orders", func() error {
		for _, o := range s.orders {
			if (q.AccountID == "" || o.AccountID == q.AccountID) && (q.EntitlementID == "" || o.EntitlementID == q.EntitlementID) {
				out = append(out, cloneOrder(o))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b agent.OrderRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

// RevokeOrder implements agent.Store.
func (s *Store) RevokeOrder(ctx context.Context, orderID string, at time.Time) error {
	const op = "revoke order"
	if at.IsZero() {
		return fmt.Errorf("memstore: %s %q: zero time: %w", op, orderID, marketplace.ErrInvalid)
	}
	return s.orderOp(ctx, op, func() error {
		o, ok := s.orders[orderID]
		if !ok {
			return fmt.Errorf("memstore: %s %q: %w", op, orderID, marketplace.ErrNotFound)
		}
		if o.RevokedAt.IsZero() {
			o.RevokedAt = at.UTC()
			s.orders[orderID] = o
		}
		return nil
	})
}

// DeleteOrders implements agent.Store.
func (s *Store) DeleteOrders(ctx context.Context, accountID string) (int, error) {
	n := 0
	err := s.orderOp(ctx, "delete orders", func() error {
		for id, o := range s.orders {
			if o.AccountID == accountID {
				delete(s.orders, id)
				n++
			}
		}
		return nil
	})
	return n, err
}

// orderOp runs fn under the store's lock, as a transaction of its own.
func (s *Store) orderOp(ctx context.Context, op string, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: %s: %w", op, marketplace.ErrClosed)
	}
	return fn()
}

// cloneOrder copies the slices, so that callers never share the store's.
func cloneOrder(o agent.OrderRecord) agent.OrderRecord {
	o.RedirectURIs = slices.Clone(o.RedirectURIs)
	o.SealedSecret = slices.Clone(o.SealedSecret)
	return o
}
