package sqlitestore

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

type batchRecord struct {
	kept int
	err  error
}

// openObserved opens a store whose commits are reported on the returned
// channel. The hook is set before any transaction runs.
func openObserved(t *testing.T) (*Store, chan batchRecord) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	batches := make(chan batchRecord, 100)
	s.testHookBatch = func(kept int, err error) { batches <- batchRecord{kept, err} }
	return s, batches
}

func nextBatch(t *testing.T, batches chan batchRecord) batchRecord {
	t.Helper()
	select {
	case b := <-batches:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no commit within 10s")
		return batchRecord{}
	}
}

// queueBehindBlocker starts a transaction that holds the writer until
// release is closed, then starts the given transactions, which queue up and
// form the next batch together. It returns their results in order.
func queueBehindBlocker(t *testing.T, s *Store, fns ...func(context.Context, marketplace.Tx) error) (release func() []any) {
	t.Helper()
	inBlocker := make(chan struct{})
	unblock := make(chan struct{})
	blockerDone := make(chan error, 1)
	go func() {
		blockerDone <- s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			close(inBlocker)
			<-unblock
			return tx.PutAccount(ctx, marketplace.Account{ID: "blocker"})
		})
	}()
	<-inBlocker
	results := make([]any, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					results[i] = p
				}
			}()
			results[i] = s.InTx(context.Background(), fn)
		})
		// One at a time, so that they queue in order: blocked senders on
		// a channel are served first in, first out. The drain then takes
		// them all into one batch, in this order.
		require.Eventually(t, func() bool { return waitingSenders(s) == i+1 }, 5*time.Second, time.Millisecond)
	}
	return func() []any {
		close(unblock)
		require.NoError(t, <-blockerDone)
		wg.Wait()
		return results
	}
}

// waitingSenders counts callers waiting for the busy writer. An unbuffered
// channel has no length to read, so it inspects the goroutine stacks; it is
// only meaningful while the writer is held inside a transaction.
func waitingSenders(*Store) int { return countStacks() }

func TestGroupCommitIsolatesCallers(t *testing.T) {
	s, batches := openObserved(t)
	errBoom := errors.New("boom")
	release := queueBehindBlocker(t, s,
		func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "ok-1"})
		},
		func(ctx context.Context, tx marketplace.Tx) error {
			if err := tx.PutAccount(ctx, marketplace.Account{ID: "failed"}); err != nil {
				return err
			}
			return errBoom
		},
		func(ctx context.Context, tx marketplace.Tx) error {
			if err := tx.PutAccount(ctx, marketplace.Account{ID: "panicked"}); err != nil {
				return err
			}
			panic("handler bug")
		},
		func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "ok-2"})
		},
	)
	results := release()
	assert.Nil(t, results[0])
	assert.ErrorIs(t, results[1].(error), errBoom)
	assert.Equal(t, "handler bug", results[2])
	assert.Nil(t, results[3])

	assert.Equal(t, batchRecord{kept: 1}, nextBatch(t, batches), "the blocker's own batch")
	assert.Equal(t, batchRecord{kept: 2}, nextBatch(t, batches), "one batch, one commit for the two that succeeded")

	var ids []string
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		accts, err := tx.ListAccounts(ctx)
		for _, a := range accts {
			ids = append(ids, a.ID)
		}
		return err
	}))
	assert.Equal(t, []string{"blocker", "ok-1", "ok-2"}, ids)
}

func TestGroupCommitFailedCommitFailsEveryCaller(t *testing.T) {
	s, batches := openObserved(t)
	// A deferred foreign key is checked at COMMIT: a violation makes the
	// commit itself fail.
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, mtx marketplace.Tx) error {
		return mtx.(*tx).exec("CREATE TABLE test_parent (id TEXT PRIMARY KEY); " +
			"CREATE TABLE test_child (parent TEXT REFERENCES test_parent (id) DEFERRABLE INITIALLY DEFERRED)")
	}))
	nextBatch(t, batches)
	release := queueBehindBlocker(t, s,
		func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "innocent"})
		},
		func(ctx context.Context, mtx marketplace.Tx) error {
			return mtx.(*tx).exec("INSERT INTO test_child VALUES ('no such parent')")
		},
	)
	results := release()
	nextBatch(t, batches) // the blocker
	b := nextBatch(t, batches)
	assert.Equal(t, 2, b.kept)
	require.Error(t, b.err)
	for i, r := range results {
		err, _ := r.(error)
		require.Error(t, err, "caller %d", i)
		assert.Contains(t, err.Error(), "sqlitestore: commit")
		assert.Contains(t, err.Error(), "FOREIGN KEY")
	}
	// Nothing of the failed batch is kept, and the store carries on.
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetAccount(ctx, "innocent")
		assert.ErrorIs(t, err, marketplace.ErrNotFound)
		return tx.PutAccount(ctx, marketplace.Account{ID: "after"})
	}))
}

func TestGroupCommitBrokenTransaction(t *testing.T) {
	s, batches := openObserved(t)
	release := queueBehindBlocker(t, s,
		func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "before"})
		},
		func(ctx context.Context, mtx marketplace.Tx) error {
			// Ends the SQLite transaction under everyone's feet, as an
			// I/O error would: the savepoint release then fails.
			return mtx.(*tx).exec("ROLLBACK")
		},
		func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "after"})
		},
	)
	results := release()
	nextBatch(t, batches) // the blocker
	broken := nextBatch(t, batches)
	assert.Equal(t, 1, broken.kept, "the caller before the break was waiting for the commit")
	assert.ErrorContains(t, broken.err, "aborted")
	assert.ErrorContains(t, results[0].(error), "aborted by a failure in the same commit group")
	assert.Error(t, results[1].(error))
	assert.Nil(t, results[2], "the caller after the break runs in the next batch")
	assert.Equal(t, batchRecord{kept: 1}, nextBatch(t, batches))

	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetAccount(ctx, "before")
		assert.ErrorIs(t, err, marketplace.ErrNotFound, "work of the broken batch")
		_, err = tx.GetAccount(ctx, "after")
		assert.NoError(t, err)
		return nil
	}))
}

func TestInTxCallerLeavesBeforeItsTurn(t *testing.T) {
	s, batches := openObserved(t)
	gate := make(chan struct{})
	inFirst := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leaverCalled := make(chan struct{}, 1)
	var leaverErr error
	release := queueBehindBlocker(t, s,
		func(ctx context.Context, tx marketplace.Tx) error {
			close(inFirst)
			<-gate
			return tx.PutAccount(ctx, marketplace.Account{ID: "first"})
		},
	)
	// Queue the leaver behind the blocker too, so that it joins the same
	// batch as "first" and waits for its turn while "first" runs.
	leaverDone := make(chan struct{})
	go func() {
		defer close(leaverDone)
		leaverErr = s.InTx(ctx, func(context.Context, marketplace.Tx) error {
			leaverCalled <- struct{}{}
			return nil
		})
	}()
	require.Eventually(t, func() bool { return waitingSenders(s) == 2 }, 5*time.Second, time.Millisecond)
	done := make(chan []any)
	go func() { done <- release() }()
	<-inFirst
	cancel()
	<-leaverDone
	assert.ErrorIs(t, leaverErr, context.Canceled)
	close(gate)
	results := <-done
	assert.Nil(t, results[0])
	assert.Len(t, leaverCalled, 0, "fn of a caller that left was called")
	nextBatch(t, batches) // blocker
	assert.Equal(t, batchRecord{kept: 1}, nextBatch(t, batches), "first and the leaver's skipped turn")
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetAccount(ctx, "first")
		return err
	}))
}

// countStacks counts goroutines blocked in a select inside InTx: callers
// waiting to hand their request to a busy writer.
func countStacks() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, "sqlitestore.(*Store).InTx(") {
			n++
		}
	}
	return n
}
