package pgstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// replicas returns two stores on one schema, each with its own pool: two
// processes of a vendor's backend, as far as PostgreSQL can tell.
func replicas(t *testing.T, maxConns int) [2]*pgstore.Store {
	t.Helper()
	schema := freshSchema(t)
	var rs [2]*pgstore.Store
	for i := range rs {
		rs[i] = newStore(t, replicaPool(t, fmt.Sprintf("pgstore-test-replica-%d", i), maxConns), schema)
	}
	return rs
}

func TestReplicasMarkProcessedExactlyOnce(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 8)
	const duplicates, events = 16, 4
	for ev := range events {
		eventID := "ev-" + strconv.Itoa(ev)
		var firsts atomic.Int32
		var winner atomic.Value
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range duplicates {
			s := rs[i%2]
			who := fmt.Sprintf("replica-%d/worker-%d", i%2, i)
			wg.Go(func() {
				<-start
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					first, err := tx.MarkProcessed(ctx, eventID, time.Now())
					if err != nil || !first {
						return err
					}
					// The effect guarded by the mark: only the winner writes.
					firsts.Add(1)
					winner.Store(who)
					return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-" + eventID, Plan: who})
				})
				assert.NoError(t, err)
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, int32(1), firsts.Load(), "transactions of %s that saw first=true", eventID)
		for i, s := range rs {
			err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				done, err := tx.IsProcessed(ctx, eventID)
				require.NoError(t, err)
				assert.True(t, done, "replica %d: IsProcessed(%s)", i, eventID)
				e, err := tx.GetEntitlement(ctx, "ent-"+eventID)
				require.NoError(t, err)
				assert.Equal(t, winner.Load(), e.Plan, "replica %d: the winner's write", i)
				return nil
			})
			require.NoError(t, err)
		}
	}
}

func TestReplicasTxLockSerialises(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 6)
	require.NoError(t, rs[0].InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-counter", Plan: "0"})
	}))
	const workersPerReplica, rounds = 4, 8
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 * workersPerReplica {
		s := rs[i%2]
		wg.Go(func() {
			for range rounds {
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					if err := tx.Lock(ctx, "ent-counter"); err != nil {
						return err
					}
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inside.Add(-1)
					// A read-modify-write that loses updates unless Lock
					// excludes the other replica until commit.
					e, err := tx.GetEntitlement(ctx, "ent-counter")
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(e.Plan)
					if err != nil {
						return err
					}
					e.Plan = strconv.Itoa(n + 1)
					return tx.PutEntitlement(ctx, e)
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, overlaps.Load(), "overlapping holders of one key")
	for _, s := range rs {
		require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			e, err := tx.GetEntitlement(ctx, "ent-counter")
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(2*workersPerReplica*rounds), e.Plan, "counter")
			return nil
		}))
	}
}

func TestReplicasLockKeySerialises(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 6)
	const workersPerReplica, rounds = 4, 6
	var inside, overlaps, entered atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 * workersPerReplica {
		s := rs[i%2]
		wg.Go(func() {
			for range rounds {
				unlock, err := s.LockKey(context.Background(), "ent-1")
				if !assert.NoError(t, err) {
					return
				}
				entered.Add(1)
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(200 * time.Microsecond) // widen the window an overlap needs
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(2*workersPerReplica*rounds), entered.Load(), "holders")
	assert.Zero(t, overlaps.Load(), "overlapping holders of one key")
}

// lockWithin waits up to d for s's lock on key. LockKey releases the lock
// when its ctx ends, so the ctx lives until the returned unlock.
func lockWithin(t *testing.T, s *pgstore.Store, key string, d time.Duration) (func(), error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(d, cancel)
	unlock, err := s.LockKey(ctx, key)
	timer.Stop()
	if err != nil {
		cancel()
		return nil, err
	}
	return func() {
		unlock()
		cancel()
	}, nil
}

func TestLockKeyReleasedByUnlock(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 4)
	ctx := context.Background()
	unlockA, err := rs[0].LockKey(ctx, "ent-1")
	require.NoError(t, err)

	// Held: the other replica cannot get it...
	_, err = lockWithin(t, rs[1], "ent-1", 100*time.Millisecond)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, pgstore.IsRetryable(err), "a caller's cancellation is not retryable")
	// ...but another key is free.
	unlockOther, err := lockWithin(t, rs[1], "ent-2", 5*time.Second)
	require.NoError(t, err)
	unlockOther()

	unlockA()
	unlockA() // idempotent
	unlockB, err := lockWithin(t, rs[1], "ent-1", 5*time.Second)
	require.NoError(t, err, "lock after the holder unlocked")
	unlockB()
}

func TestLockKeyReleasedWhenContextEnds(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 4)
	ctxA, cancelA := context.WithCancel(context.Background())
	unlockA, err := rs[0].LockKey(ctxA, "ent-1")
	require.NoError(t, err)
	cancelA()
	unlockB, err := lockWithin(t, rs[1], "ent-1", 5*time.Second)
	require.NoError(t, err, "lock after the holder's context ended")
	unlockA() // after the automatic release: a no-op, and B keeps the lock
	_, err = lockWithin(t, rs[0], "ent-1", 100*time.Millisecond)
	require.ErrorIs(t, err, context.Canceled, "B still holds the lock")
	unlockB()
}

func TestLockKeyWaitCancelledLeavesNothingHeld(t *testing.T) {
	t.Parallel()
	pool := replicaPool(t, "pgstore-test-lockwait", 4)
	rs := [2]*pgstore.Store{newStore(t, sharedPool(t), freshSchema(t)), nil}
	rs[1] = newStore(t, pool, rs[0].Schema())
	unlockA, err := rs[0].LockKey(context.Background(), "ent-1")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = rs[1].LockKey(ctx, "ent-1")
	require.ErrorIs(t, err, context.Canceled)

	unlockA()
	// Had the abandoned wait kept the lock on its session, this would time out.
	unlockC, err := lockWithin(t, rs[0], "ent-1", 5*time.Second)
	require.NoError(t, err)
	unlockC()
	assert.Zero(t, pool.Stat().AcquiredConns(), "connections still taken from the waiting replica's pool")
}

// The processor holds LockKey(k) and, inside, a transaction calls
// Tx.Lock(k): the two must not wait for each other.
func TestLockKeyThenTxLockSameKey(t *testing.T) {
	t.Parallel()
	s := newStore(t, sharedPool(t), freshSchema(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := s.LockKey(ctx, "ent-1")
	require.NoError(t, err)
	defer unlock()
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		if err := tx.Lock(ctx, "ent-1"); err != nil {
			return err
		}
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	}))
}

func TestLockKeyInvalidAndClosed(t *testing.T) {
	t.Parallel()
	s, err := pgstore.New(context.Background(), sharedPool(t), pgstore.WithSchema(freshSchema(t)))
	require.NoError(t, err)
	_, err = s.LockKey(context.Background(), "")
	require.ErrorIs(t, err, marketplace.ErrInvalid)

	unlock, err := s.LockKey(context.Background(), "ent-1")
	require.NoError(t, err)
	closed := make(chan struct{})
	go func() {
		assert.NoError(t, s.Close())
		close(closed)
	}()
	// Close waits for the held key lock; new locks are refused meanwhile.
	require.Eventually(t, func() bool {
		unlock2, err := s.LockKey(context.Background(), "ent-2")
		if err == nil {
			unlock2() // Close has not started yet
		}
		return err != nil
	}, 5*time.Second, time.Millisecond)
	_, err = s.LockKey(context.Background(), "ent-2")
	require.ErrorIs(t, err, marketplace.ErrClosed)
	select {
	case <-closed:
		t.Fatal("Close returned while a key lock was held")
	default:
	}
	unlock()
	<-closed
}
