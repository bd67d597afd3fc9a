package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var _ marketplace.Viewer = (*Store)(nil)

// View implements marketplace.Viewer. Views hold the store's lock for
// reading: they run concurrently with one another, but wait for a running
// InTx (whose changes are made in place until it commits or rolls back),
// and InTx waits for them.
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("memstore: begin read-only transaction: %w", marketplace.ErrClosed)
	}
	t := &tx{s: s}
	// Also on a panic or runtime.Goexit in fn: nothing to undo, since the
	// Tx cannot write, but it must not outlive the read lock.
	defer func() { t.done = true }()
	return fn(ctx, readOnlyTx{t})
}

// readOnlyTx is the Tx of a View: tx's read methods, which change nothing,
// and write methods that refuse.
type readOnlyTx struct{ *tx }

var _ marketplace.Tx = readOnlyTx{}

func readOnly(op string) error {
	return fmt.Errorf("memstore: %s: %w", op, marketplace.ErrReadOnly)
}

func (readOnlyTx) MarkProcessed(context.Context, string, time.Time) (bool, error) {
	return false, readOnly("mark processed")
}

func (readOnlyTx) PruneProcessed(context.Context, time.Time) (int, error) {
	return 0, readOnly("prune processed")
}

func (readOnlyTx) PutAccount(context.Context, marketplace.Account) error {
	return readOnly("put account")
}

func (readOnlyTx) DeleteAccount(context.Context, string) error {
	return readOnly("delete account")
}

func (readOnlyTx) PutEntitlement(context.Context, marketplace.Entitlement) error {
	return readOnly("put entitlement")
}

func (readOnlyTx) AdvanceEntitlement(context.Context, marketplace.Entitlement) (bool, error) {
	return false, readOnly("advance entitlement")
}

func (readOnlyTx) DeleteEntitlement(context.Context, string) error {
	return readOnly("delete entitlement")
}

func (readOnlyTx) EnqueueApproval(context.Context, marketplace.ApprovalRequest) (marketplace.ApprovalRequest, error) {
	return marketplace.ApprovalRequest{}, readOnly("enqueue approval")
}

func (readOnlyTx) DeleteApproval(context.Context, string, marketplace.ApprovalKind) error {
	return readOnly("delete approval")
}

func (readOnlyTx) RecordPoison(context.Context, marketplace.Poison) error {
	return readOnly("record poison")
}

func (readOnlyTx) DeletePoison(context.Context, string) error {
	return readOnly("delete poison")
}
