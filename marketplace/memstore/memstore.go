// Package memstore is an in-memory marketplace.Store for tests, examples and
// demos. Nothing survives the process.
//
// Transactions are serialised by one mutex held for the whole of InTx, so
// they are trivially isolated and Tx.Lock has nothing left to do. Rollback
// replays an undo log. Read-only transactions (View) share the mutex with
// one another and wait for InTx. Do not use it where several processes
// share state.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

// Store is an in-memory marketplace.Store. The zero value is not usable;
// create one with New. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex // held for the whole of each transaction; read-held by View (read.go)
	closed bool

	processed map[string]time.Time
	accounts  map[string]marketplace.Account
	ents      map[string]marketplace.Entitlement
	approvals map[approvalKey]marketplace.ApprovalRequest
	poison    []poisonRow
	seq       int64 // last approval Seq handed out
	poisonSeq int64 // insertion order, to break ties between equal At

	history    []marketplace.Transition // in Seq order (history.go)
	historySeq int64                    // last Transition Seq handed out

	ledger ledgerState // ledger.Ledger (ledger.go)

	usedTokens map[string]time.Time // signup.UsedTokens (tokens.go): key → expiry
	origin     marketplace.Origin   // marketplace.OriginRecorder (origin.go); zero until recorded

	orders map[string]agent.OrderRecord // agent.Store (agent.go): order id → record
}

type approvalKey struct {
	entitlementID string
	kind          marketplace.ApprovalKind
}

type poisonRow struct {
	p   marketplace.Poison
	seq int64
}

var _ marketplace.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		processed: make(map[string]time.Time),
		accounts:  make(map[string]marketplace.Account),
		ents:      make(map[string]marketplace.Entitlement),
		approvals: make(map[approvalKey]marketplace.ApprovalRequest),
	}
}

// InTx implements marketplace.Store. Transactions run one at a time.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: begin transaction: %w", marketplace.ErrClosed)
	}
	tx := &tx{s: s}
	committed := false
	// A deferred rollback also covers a panic and runtime.Goexit in fn
	// (t.FailNow in a test): the mutex must never be left held over
	// half-applied changes.
	defer func() {
		tx.done = true
		if !committed {
			for i := len(tx.undo) - 1; i >= 0; i-- {
				tx.undo[i]()
			}
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	committed = true
	return nil
}

// Close implements marketplace.Store. It waits for a running transaction.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// tx is used only while Store.mu is held by its InTx, so it needs no lock of
// its own.
type tx struct {
	s    *Store
	done bool
	undo []func()
}

var _ marketplace.Tx = (*tx)(nil)

func (t *tx) check(ctx context.Context, op string, ids ...string) error {
	if t.done {
		return fmt.Errorf("memstore: %s: %w", op, marketplace.ErrTxDone)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	for _, id := range ids {
		if id == "" {
			return fmt.Errorf("memstore: %s: empty id: %w", op, marketplace.ErrInvalid)
		}
	}
	return nil
}

// saveMap records how to restore m[k] to its current state on rollback.
func saveMap[K comparable, V any](t *tx, m map[K]V, k K) {
	old, existed := m[k]
	t.undo = append(t.undo, func() {
		if existed {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
}

func (t *tx) Lock(ctx context.Context, key string) error {
	// The store mutex already serialises every transaction.
	return t.check(ctx, "lock", key)
}

func (t *tx) MarkProcessed(ctx context.Context, eventID string, at time.Time) (bool, error) {
	if err := t.check(ctx, "mark processed", eventID); err != nil {
		return false, err
	}
	if _, ok := t.s.processed[eventID]; ok {
		return false, nil
	}
	saveMap(t, t.s.processed, eventID)
	t.s.processed[eventID] = at.UTC()
	return true, nil
}

func (t *tx) IsProcessed(ctx context.Context, eventID string) (bool, error) {
	if err := t.check(ctx, "is processed", eventID); err != nil {
		return false, err
	}
	_, ok := t.s.processed[eventID]
	return ok, nil
}

func (t *tx) PruneProcessed(ctx context.Context, before time.Time) (int, error) {
	if err := t.check(ctx, "prune processed"); err != nil {
		return 0, err
	}
	n := 0
	for id, at := range t.s.processed {
		if at.Before(before) {
			saveMap(t, t.s.processed, id)
			delete(t.s.processed, id)
			n++
		}
	}
	return n, nil
}

func (t *tx) GetAccount(ctx context.Context, id string) (marketplace.Account, error) {
	if err := t.check(ctx, "get account", id); err != nil {
		return marketplace.Account{}, err
	}
	a, ok := t.s.accounts[id]
	if !ok {
		return marketplace.Account{}, fmt.Errorf("memstore: get account %q: %w", id, marketplace.ErrNotFound)
	}
	return a, nil
}

func (t *tx) PutAccount(ctx context.Context, a marketplace.Account) error {
	if err := t.check(ctx, "put account", a.ID); err != nil {
		return err
	}
	a.UpdateTime = a.UpdateTime.UTC()
	a.CreatedAt = a.CreatedAt.UTC()
	saveMap(t, t.s.accounts, a.ID)
	t.s.accounts[a.ID] = a
	return nil
}

func (t *tx) DeleteAccount(ctx context.Context, id string) error {
	if err := t.check(ctx, "delete account", id); err != nil {
		return err
	}
	saveMap(t, t.s.accounts, id)
	delete(t.s.accounts, id)
	t.deleteHistory(id)
	return nil
}

func (t *tx) ListAccounts(ctx context.Context) ([]marketplace.Account, error) {
	if err := t.check(ctx, "list accounts"); err != nil {
		return nil, err
	}
	out := make([]marketplace.Account, 0, len(t.s.accounts))
	for _, a := range t.s.accounts {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b marketplace.Account) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (t *tx) GetEntitlement(ctx context.Context, id string) (marketplace.Entitlement, error) {
	if err := t.check(ctx, "get entitlement", id); err != nil {
		return marketplace.Entitlement{}, err
	}
	e, ok := t.s.ents[id]
	if !ok {
		return marketplace.Entitlement{}, fmt.Errorf("memstore: get entitlement %q: %w", id, marketplace.ErrNotFound)
	}
	return e, nil
}

func (t *tx) putEntitlement(e marketplace.Entitlement) {
	e.UpdateTime = e.UpdateTime.UTC()
	e.ParkedAt = e.ParkedAt.UTC()
	e.CancelTime = e.CancelTime.UTC()
	saveMap(t, t.s.ents, e.ID)
	t.s.ents[e.ID] = e
}

func (t *tx) PutEntitlement(ctx context.Context, e marketplace.Entitlement) error {
	if err := t.check(ctx, "put entitlement", e.ID); err != nil {
		return err
	}
	t.putEntitlement(e)
	return nil
}

func (t *tx) AdvanceEntitlement(ctx context.Context, e marketplace.Entitlement) (bool, error) {
	if err := t.check(ctx, "advance entitlement", e.ID); err != nil {
		return false, err
	}
	if old, ok := t.s.ents[e.ID]; ok && !e.UpdateTime.After(old.UpdateTime) {
		return false, nil
	}
	t.putEntitlement(e)
	return true, nil
}

func (t *tx) DeleteEntitlement(ctx context.Context, id string) error {
	if err := t.check(ctx, "delete entitlement", id); err != nil {
		return err
	}
	saveMap(t, t.s.ents, id)
	delete(t.s.ents, id)
	return nil
}

func (t *tx) ListEntitlements(ctx context.Context, q marketplace.EntitlementQuery) ([]marketplace.Entitlement, error) {
	if err := t.check(ctx, "list entitlements"); err != nil {
		return nil, err
	}
	out := []marketplace.Entitlement{}
	for _, e := range t.s.ents {
		if (q.AccountID == "" || e.AccountID == q.AccountID) &&
			(q.State == "" || e.State == q.State) &&
			(!q.ParkedOnly || e.Parked) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b marketplace.Entitlement) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (t *tx) EnqueueApproval(ctx context.Context, r marketplace.ApprovalRequest) (marketplace.ApprovalRequest, error) {
	if err := t.check(ctx, "enqueue approval", r.EntitlementID, string(r.Kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	k := approvalKey{r.EntitlementID, r.Kind}
	if old, ok := t.s.approvals[k]; ok {
		r.Seq = old.Seq
	} else {
		oldSeq := t.s.seq
		t.undo = append(t.undo, func() { t.s.seq = oldSeq })
		t.s.seq++
		r.Seq = t.s.seq
	}
	r.RequestedAt = r.RequestedAt.UTC()
	saveMap(t, t.s.approvals, k)
	t.s.approvals[k] = r
	return r, nil
}

func (t *tx) GetApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) (marketplace.ApprovalRequest, error) {
	if err := t.check(ctx, "get approval", entitlementID, string(kind)); err != nil {
		return marketplace.ApprovalRequest{}, err
	}
	r, ok := t.s.approvals[approvalKey{entitlementID, kind}]
	if !ok {
		return marketplace.ApprovalRequest{}, fmt.Errorf("memstore: get approval %q/%s: %w", entitlementID, kind, marketplace.ErrNotFound)
	}
	return r, nil
}

func (t *tx) ListApprovals(ctx context.Context) ([]marketplace.ApprovalRequest, error) {
	if err := t.check(ctx, "list approvals"); err != nil {
		return nil, err
	}
	out := make([]marketplace.ApprovalRequest, 0, len(t.s.approvals))
	for _, r := range t.s.approvals {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b marketplace.ApprovalRequest) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

func (t *tx) DeleteApproval(ctx context.Context, entitlementID string, kind marketplace.ApprovalKind) error {
	if err := t.check(ctx, "delete approval", entitlementID, string(kind)); err != nil {
		return err
	}
	k := approvalKey{entitlementID, kind}
	saveMap(t, t.s.approvals, k)
	delete(t.s.approvals, k)
	return nil
}

func (t *tx) RecordPoison(ctx context.Context, p marketplace.Poison) error {
	if err := t.check(ctx, "record poison"); err != nil {
		return err
	}
	if len(p.Data) > marketplace.PoisonDataLimit {
		p.Data = p.Data[:marketplace.PoisonDataLimit]
	}
	p.Data = slices.Clone(p.Data)
	p.At = p.At.UTC()
	oldLen, oldSeq := len(t.s.poison), t.s.poisonSeq
	t.undo = append(t.undo, func() {
		t.s.poison = t.s.poison[:oldLen]
		t.s.poisonSeq = oldSeq
	})
	t.s.poisonSeq++
	t.s.poison = append(t.s.poison, poisonRow{p: p, seq: t.s.poisonSeq})
	return nil
}

func (t *tx) DeletePoison(ctx context.Context, messageID string) error {
	if err := t.check(ctx, "delete poison", messageID); err != nil {
		return err
	}
	old := t.s.poison
	t.undo = append(t.undo, func() { t.s.poison = old })
	t.s.poison = slices.DeleteFunc(slices.Clone(old), func(r poisonRow) bool { return r.p.MessageID == messageID })
	return nil
}

func (t *tx) ListPoison(ctx context.Context, limit int) ([]marketplace.Poison, error) {
	if err := t.check(ctx, "list poison"); err != nil {
		return nil, err
	}
	rows := slices.Clone(t.s.poison)
	slices.SortFunc(rows, func(a, b poisonRow) int {
		if c := b.p.At.Compare(a.p.At); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	out := make([]marketplace.Poison, len(rows))
	for i, r := range rows {
		out[i] = r.p
		out[i].Data = slices.Clone(r.p.Data)
	}
	return out, nil
}
