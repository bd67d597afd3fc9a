package pgstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// terminate ends, from another connection, every backend whose application
// name is appName (what a PostgreSQL restart does to a replica's pool), and
// waits until they are gone.
func terminate(t *testing.T, appName string) int {
	t.Helper()
	ctx := context.Background()
	pool := sharedPool(t)
	n := queryInt(t, pool, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", appName)
	require.Eventually(t, func() bool {
		var left int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&left)
		return err == nil && left == 0
	}, 10*time.Second, 5*time.Millisecond)
	return n
}

// retryInTx is what a caller does with retryable errors: run the whole unit
// again. Every error it sees must be retryable.
func retryInTx(t *testing.T, s *pgstore.Store, fn func(ctx context.Context, tx marketplace.Tx) error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := s.InTx(context.Background(), fn)
		if err == nil {
			return
		}
		require.Truef(t, pgstore.IsRetryable(err), "attempt %d: error not retryable: %v", attempt, err)
		require.Less(t, attempt, 10, "still failing: %v", err)
	}
}

func accountIDs(t *testing.T, s *pgstore.Store) []string {
	t.Helper()
	var ids []string
	retryInTx(t, s, func(ctx context.Context, tx marketplace.Tx) error {
		accts, err := tx.ListAccounts(ctx)
		ids = ids[:0]
		for _, a := range accts {
			ids = append(ids, a.ID)
		}
		return err
	})
	return ids
}

// warm fills the pool with n open connections.
func warm(t *testing.T, s *pgstore.Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	release := make(chan struct{})
	var ready sync.WaitGroup
	for range n {
		ready.Add(1)
		wg.Go(func() {
			assert.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				_, err := tx.IsProcessed(ctx, "warm")
				ready.Done()
				<-release
				return err
			}))
		})
	}
	ready.Wait()
	close(release)
	wg.Wait()
}

func TestConnectionsTerminatedBetweenTransactions(t *testing.T) {
	t.Parallel()
	const app = "pgstore-test-connloss-idle"
	s := newStore(t, replicaPool(t, app, 4), freshSchema(t))
	retryInTx(t, s, func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-before"})
	})
	warm(t, s, 4)
	require.Equal(t, 4, terminate(t, app), "terminated backends")

	// Every idle connection of the pool is dead. The next transaction
	// either succeeds on a fresh connection or fails retryably; nothing
	// committed is lost.
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-after"})
	})
	t.Logf("first transaction after the termination: error %v", err)
	if err != nil {
		require.Truef(t, pgstore.IsRetryable(err), "not retryable: %v", err)
		retryInTx(t, s, func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "acct-after"})
		})
	}
	assert.Equal(t, []string{"acct-after", "acct-before"}, accountIDs(t, s))
}

func TestConnectionTerminatedInsideTransaction(t *testing.T) {
	t.Parallel()
	const app = "pgstore-test-connloss-busy"
	s := newStore(t, replicaPool(t, app, 2), freshSchema(t))
	retryInTx(t, s, func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.MarkProcessed(ctx, "ev-committed", base)
		if err != nil {
			return err
		}
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-committed"})
	})

	var stmtErr error
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		if _, err := tx.MarkProcessed(ctx, "ev-lost", base); err != nil {
			return err
		}
		if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-lost"}); err != nil {
			return err
		}
		terminate(t, app) // the server goes away mid-transaction
		stmtErr = tx.PutAccount(ctx, marketplace.Account{ID: "acct-lost-2"})
		return stmtErr
	})
	require.Error(t, stmtErr)
	assert.Same(t, stmtErr, err, "InTx returns fn's error unchanged")
	assert.ErrorIs(t, err, pgstore.ErrUnavailable)
	assert.True(t, pgstore.IsRetryable(err))
	assert.ErrorContains(t, err, "put account \"acct-lost-2\"")

	// The interrupted transaction left nothing; the committed one is whole,
	// and the event can be processed again.
	assert.Equal(t, []string{"acct-committed"}, accountIDs(t, s))
	retryInTx(t, s, func(ctx context.Context, tx marketplace.Tx) error {
		done, err := tx.IsProcessed(ctx, "ev-committed")
		require.NoError(t, err)
		assert.True(t, done, "ev-committed")
		first, err := tx.MarkProcessed(ctx, "ev-lost", base)
		require.NoError(t, err)
		assert.True(t, first, "ev-lost is new again")
		return nil
	})
}

// fn that ignores a failed statement and returns nil does not get a commit:
// InTx reports the statement's error.
func TestIgnoredStatementErrorFailsCommit(t *testing.T) {
	t.Parallel()
	const app = "pgstore-test-connloss-ignored"
	s := newStore(t, replicaPool(t, app, 2), freshSchema(t))
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}); err != nil {
			return err
		}
		terminate(t, app)
		_ = tx.PutAccount(ctx, marketplace.Account{ID: "acct-2"}) // error ignored
		return nil
	})
	require.Error(t, err)
	assert.ErrorContains(t, err, "aborted by an earlier error")
	assert.True(t, pgstore.IsRetryable(err), "%v", err)
	assert.Empty(t, accountIDs(t, s))
}

func TestKeyLockConnectionTerminated(t *testing.T) {
	t.Parallel()
	const app = "pgstore-test-connloss-keylock"
	schema := freshSchema(t)
	a := newStore(t, replicaPool(t, app, 2), schema)
	b := newStore(t, sharedPool(t), schema)
	unlock, err := a.LockKey(context.Background(), "ent-1")
	require.NoError(t, err)
	terminate(t, app) // the session and its lock are gone
	unlockB, err := lockWithin(t, b, "ent-1", 5*time.Second)
	require.NoError(t, err)
	unlock() // cannot confirm the release: the connection is discarded
	unlockB()
	// a works again with fresh connections.
	unlockA, err := lockWithin(t, a, "ent-1", 5*time.Second)
	require.NoError(t, err)
	unlockA()
}

// Two replicas locking two keys in opposite orders deadlock; PostgreSQL
// aborts one, which gets a retryable ErrConflict and is not re-run by InTx.
func TestDeadlockIsRetryableConflict(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	var rs [2]*pgstore.Store
	for i := range rs {
		// Detect the deadlock after 20 ms instead of 1 s (a startup
		// parameter only superusers may set; without the privilege the
		// test still works, in a second).
		p := replicaPool(t, "pgstore-test-deadlock", 2, "deadlock_timeout", "20ms")
		if err := p.Ping(context.Background()); err != nil {
			p = replicaPool(t, "pgstore-test-deadlock", 2)
		}
		rs[i] = newStore(t, p, schema)
	}
	keys := [2]string{"ent-a", "ent-b"}
	var (
		both  sync.WaitGroup
		wg    sync.WaitGroup
		errs  [2]error
		calls [2]int
	)
	both.Add(2)
	for i := range rs {
		wg.Go(func() {
			errs[i] = rs[i].InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				calls[i]++
				if err := tx.Lock(ctx, keys[i]); err != nil {
					return err
				}
				both.Done()
				both.Wait() // each holds its first key
				if err := tx.Lock(ctx, keys[1-i]); err != nil {
					return err
				}
				return tx.PutAccount(ctx, marketplace.Account{ID: keys[i]})
			})
		})
	}
	wg.Wait()
	assert.Equal(t, [2]int{1, 1}, calls, "fn calls: InTx never re-runs fn")
	var conflicts int
	for _, err := range errs {
		if err != nil {
			assert.ErrorIs(t, err, pgstore.ErrConflict)
			assert.True(t, pgstore.IsRetryable(err))
			conflicts++
		}
	}
	assert.Equal(t, 1, conflicts, "aborted transactions: %v", errors.Join(errs[:]...))
	assert.Len(t, accountIDs(t, rs[0]), 1, "the survivor committed")
}
