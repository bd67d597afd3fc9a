package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

var _ ledger.Ledger = (*Store)(nil)

// ledgerState is the usage ledger. It is guarded by Store.mu, like the rest
// of the store; every ledger method is one critical section, so each is
// atomic and they serialise with InTx.
type ledgerState struct {
	consumers map[string]*ledger.ConsumerState
	rows      map[string]map[rowKey]*ledger.Row // by entitlement id
	windows   map[string]*ledger.Window         // by operation id
}

type rowKey struct {
	window int64 // UnixNano of the window start
	metric string
	labels string
}

func (l *ledgerState) init() {
	if l.consumers == nil {
		l.consumers = map[string]*ledger.ConsumerState{}
		l.rows = map[string]map[rowKey]*ledger.Row{}
		l.windows = map[string]*ledger.Window{}
	}
}

// lockLedger takes the store lock for one ledger operation.
func (s *Store) lockLedger(ctx context.Context, op string, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	for _, id := range ids {
		if id == "" {
			return fmt.Errorf("memstore: %s: empty id: %w", op, ledger.ErrInvalid)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memstore: %s: %w", op, marketplace.ErrClosed)
	}
	s.ledger.init()
	return nil
}

func utc(t time.Time) time.Time { return t.UTC() }

// PutConsumer implements ledger.Ledger.
func (s *Store) PutConsumer(ctx context.Context, c ledger.Consumer, frontier time.Time) error {
	if err := s.lockLedger(ctx, "put consumer", c.EntitlementID); err != nil {
		return err
	}
	defer s.mu.Unlock()
	c.Start, c.End = utc(c.Start), utc(c.End)
	if old, ok := s.ledger.consumers[c.EntitlementID]; ok {
		old.Consumer = c
		return nil
	}
	s.ledger.consumers[c.EntitlementID] = &ledger.ConsumerState{Consumer: c, Frontier: utc(frontier)}
	return nil
}

// GetConsumer implements ledger.Ledger.
func (s *Store) GetConsumer(ctx context.Context, entitlementID string) (ledger.ConsumerState, error) {
	if err := s.lockLedger(ctx, "get consumer", entitlementID); err != nil {
		return ledger.ConsumerState{}, err
	}
	defer s.mu.Unlock()
	c, ok := s.ledger.consumers[entitlementID]
	if !ok {
		return ledger.ConsumerState{}, fmt.Errorf("memstore: get consumer %q: %w", entitlementID, ledger.ErrUnknownConsumer)
	}
	return *c, nil
}

// ListConsumers implements ledger.Ledger.
func (s *Store) ListConsumers(ctx context.Context, q ledger.ConsumerQuery) ([]ledger.ConsumerState, error) {
	if err := s.lockLedger(ctx, "list consumers"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []ledger.ConsumerState{}
	for _, c := range s.ledger.consumers {
		if !q.BlockedOnly || c.Block.Code != "" {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b ledger.ConsumerState) int { return strings.Compare(a.EntitlementID, b.EntitlementID) })
	return out, nil
}

// SetBlock implements ledger.Ledger.
func (s *Store) SetBlock(ctx context.Context, entitlementID string, b ledger.Block) error {
	if err := s.lockLedger(ctx, "set block", entitlementID); err != nil {
		return err
	}
	defer s.mu.Unlock()
	c, ok := s.ledger.consumers[entitlementID]
	if !ok {
		return fmt.Errorf("memstore: set block of %q: %w", entitlementID, ledger.ErrUnknownConsumer)
	}
	b.Since = utc(b.Since)
	c.Block = b
	return nil
}

// AddUsage implements ledger.Ledger.
func (s *Store) AddUsage(ctx context.Context, u ledger.Usage) (time.Time, error) {
	if err := s.lockLedger(ctx, "add usage", u.EntitlementID); err != nil {
		return time.Time{}, err
	}
	defer s.mu.Unlock()
	c, ok := s.ledger.consumers[u.EntitlementID]
	if !ok {
		return time.Time{}, fmt.Errorf("memstore: add usage for %q: %w", u.EntitlementID, ledger.ErrUnknownConsumer)
	}
	w, err := ledger.Admit(*c, u)
	if err != nil {
		return time.Time{}, fmt.Errorf("memstore: add %w", err)
	}
	rows := s.ledger.rows[u.EntitlementID]
	if rows == nil {
		rows = map[rowKey]*ledger.Row{}
		s.ledger.rows[u.EntitlementID] = rows
	}
	k := rowKey{w.UnixNano(), u.Metric, u.Labels}
	if r, ok := rows[k]; ok {
		r.Int64 += u.Int64
		r.Double += u.Double
	} else {
		rows[k] = &ledger.Row{Bucket: w, Metric: u.Metric, Kind: u.Kind, Labels: u.Labels, Int64: u.Int64, Double: u.Double}
	}
	return w, nil
}

// Seal implements ledger.Ledger.
func (s *Store) Seal(ctx context.Context, p ledger.SealParams, fn ledger.SealFunc) (int, error) {
	if err := s.lockLedger(ctx, "seal"); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	type pick struct {
		c    *ledger.ConsumerState
		keys []rowKey
	}
	var picks []pick
	for _, c := range s.ledger.consumers {
		if p.Held[c.EntitlementID] {
			continue
		}
		ended := p.EndedBy(c.Consumer)
		var keys []rowKey
		for k, r := range s.ledger.rows[c.EntitlementID] {
			if ended || r.Bucket.Before(p.Before) {
				keys = append(keys, k)
			}
		}
		open := c.Frontier.Before(p.Before) && (c.End.IsZero() || c.Frontier.Before(c.End))
		if open || (ended && c.Frontier.Before(c.End)) || len(keys) > 0 {
			picks = append(picks, pick{c, keys})
		}
	}
	slices.SortFunc(picks, func(a, b pick) int {
		if c := a.c.Frontier.Compare(b.c.Frontier); c != 0 {
			return c
		}
		return strings.Compare(a.c.EntitlementID, b.c.EntitlementID)
	})
	if p.Limit > 0 && len(picks) > p.Limit {
		picks = picks[:p.Limit]
	}
	// Compute everything first so that an error leaves nothing changed.
	results := make([]ledger.Sealed, len(picks))
	for i, pk := range picks {
		rows := make([]ledger.Row, 0, len(pk.keys))
		for _, k := range pk.keys {
			rows = append(rows, *s.ledger.rows[pk.c.EntitlementID][k])
		}
		slices.SortFunc(rows, func(a, b ledger.Row) int {
			return cmp.Or(a.Bucket.Compare(b.Bucket), strings.Compare(a.Metric, b.Metric), strings.Compare(a.Labels, b.Labels))
		})
		res, err := fn(*pk.c, rows)
		if err != nil {
			return 0, err
		}
		results[i] = res
	}
	for i, pk := range picks {
		for _, w := range results[i].Windows {
			if _, ok := s.ledger.windows[w.OperationID]; ok {
				continue
			}
			w := cloneWindow(w)
			s.ledger.windows[w.OperationID] = &w
		}
		for _, k := range pk.keys {
			delete(s.ledger.rows[pk.c.EntitlementID], k)
		}
		pk.c.Frontier = utc(results[i].Frontier)
	}
	return len(picks), nil
}

func cloneWindow(w ledger.Window) ledger.Window {
	w.Values = slices.Clone(w.Values)
	w.Start, w.End, w.Deadline = utc(w.Start), utc(w.End), utc(w.Deadline)
	w.SealedAt, w.LastAttempt, w.ReportedAt, w.LeaseUntil = utc(w.SealedAt), utc(w.LastAttempt), utc(w.ReportedAt), utc(w.LeaseUntil)
	return w
}

func windowOrder(a, b *ledger.Window) int {
	return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.OperationID, b.OperationID))
}

// ClaimWindows implements ledger.Ledger.
func (s *Store) ClaimWindows(ctx context.Context, p ledger.ClaimParams) ([]ledger.Window, error) {
	if err := s.lockLedger(ctx, "claim windows"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var ws []*ledger.Window
	for _, w := range s.ledger.windows {
		if (w.State == ledger.StatePending || w.State == ledger.StateUnknown) && !w.LeaseUntil.After(p.Now) {
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, windowOrder)
	if p.Limit > 0 && len(ws) > p.Limit {
		ws = ws[:p.Limit]
	}
	out := make([]ledger.Window, len(ws))
	for i, w := range ws {
		w.LeaseOwner, w.LeaseUntil = p.Owner, utc(p.LeaseUntil)
		w.LeaseToken++
		out[i] = cloneWindow(*w)
	}
	return out, nil
}

// UpdateWindows implements ledger.Ledger.
func (s *Store) UpdateWindows(ctx context.Context, owner string, updates []ledger.WindowUpdate) ([]string, error) {
	if err := s.lockLedger(ctx, "update windows"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	for _, u := range updates {
		if u.OperationID == "" {
			return nil, fmt.Errorf("memstore: update windows: empty operation id: %w", ledger.ErrInvalid)
		}
	}
	var lost []string
	for _, u := range updates {
		w, ok := s.ledger.windows[u.OperationID]
		if !ok || (owner != "" && (w.LeaseOwner != owner || w.LeaseToken != u.LeaseToken)) {
			lost = append(lost, u.OperationID)
			continue
		}
		if owner == "" {
			w.LeaseToken++ // an override fences the lease holder out
		}
		w.State, w.Reason, w.Attempts = u.State, u.Reason, u.Attempts
		w.LastAttempt, w.ReportedAt, w.LeaseUntil = utc(u.LastAttempt), utc(u.ReportedAt), utc(u.LeaseUntil)
	}
	return lost, nil
}

// ListWindows implements ledger.Ledger.
func (s *Store) ListWindows(ctx context.Context, q ledger.WindowQuery) ([]ledger.Window, error) {
	if err := s.lockLedger(ctx, "list windows"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	ws := []*ledger.Window{}
	for _, w := range s.ledger.windows {
		if windowMatches(w, q) {
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, windowOrder)
	if q.Limit > 0 && len(ws) > q.Limit {
		ws = ws[:q.Limit]
	}
	out := make([]ledger.Window, len(ws))
	for i, w := range ws {
		out[i] = cloneWindow(*w)
	}
	return out, nil
}

func windowMatches(w *ledger.Window, q ledger.WindowQuery) bool {
	after := q.After.IsZero() || windowOrder(w, &ledger.Window{Start: q.After.Start, OperationID: q.After.OperationID}) > 0
	return (q.States == nil || slices.Contains(q.States, w.State)) && (q.EntitlementID == "" || q.EntitlementID == w.EntitlementID) &&
		(q.OperationID == "" || q.OperationID == w.OperationID) &&
		(q.From.IsZero() || !w.Start.Before(q.From)) && (q.To.IsZero() || w.Start.Before(q.To)) && after
}

// PruneWindows implements ledger.Ledger.
func (s *Store) PruneWindows(ctx context.Context, before time.Time) (int, error) {
	if err := s.lockLedger(ctx, "prune windows"); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	for id, w := range s.ledger.windows {
		if (w.State == ledger.StateReported || w.State == ledger.StateRejected) && w.SealedAt.Before(before) {
			delete(s.ledger.windows, id)
			n++
		}
	}
	return n, nil
}
