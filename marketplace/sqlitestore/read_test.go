package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// TestCloseWaitsForView: Close returns only after a running View has ended,
// and then leaves no WAL behind (the writer's connection closes last and
// checkpoints).
func TestCloseWaitsForView(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	}))

	inView, release := make(chan struct{}), make(chan struct{})
	viewErr := make(chan error, 1)
	go func() {
		viewErr <- s.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			close(inView)
			<-release
			_, err := tx.GetAccount(ctx, "acct-1")
			return err
		})
	}()
	<-inView
	var closed atomic.Bool
	closeErr := make(chan error, 1)
	go func() {
		closeErr <- s.Close()
		closed.Store(true)
	}()
	// Close has stopped accepting Views (or is about to); the running one
	// is unaffected.
	require.Eventually(t, func() bool {
		err := s.View(context.Background(), func(context.Context, marketplace.Tx) error { return nil })
		return err != nil
	}, 10*time.Second, time.Millisecond, "View not refused once Close started")
	assert.False(t, closed.Load(), "Close returned while a View was running")
	close(release)
	require.NoError(t, <-viewErr, "the View running when Close was called")
	require.NoError(t, <-closeErr)

	err = s.View(context.Background(), func(context.Context, marketplace.Tx) error { return nil })
	require.ErrorIs(t, err, marketplace.ErrClosed)
	_, err = os.Stat(path + "-wal")
	assert.True(t, os.IsNotExist(err), "WAL file left after Close: %v", err)
}

// TestViewWaitsForConnectionWithContext: with every read connection busy, a
// View waits for one, and gives up when its ctx does.
func TestViewWaitsForConnectionWithContext(t *testing.T) {
	t.Parallel()
	s := openAt(t, filepath.Join(t.TempDir(), "store.db"))
	const pool = 4 // connections, as documented on View
	const busy = 2 * pool
	release := make(chan struct{})
	var wg sync.WaitGroup
	var holding atomic.Int32
	for range busy {
		wg.Go(func() {
			err := s.View(context.Background(), func(context.Context, marketplace.Tx) error {
				holding.Add(1)
				<-release
				return nil
			})
			assert.NoError(t, err)
		})
	}
	// pool Views hold every connection; the others wait for one.
	require.Eventually(t, func() bool { return holding.Load() == pool }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	called := false
	err := s.View(ctx, func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, called, "fn called without a connection")
	assert.Equal(t, int32(pool), holding.Load(), "Views running at once")
	// The writer is not affected by busy readers.
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	}))
	close(release)
	wg.Wait()
	assert.Equal(t, int32(busy), holding.Load(), "every waiting View ran")
}

// TestViewSnapshotIsStable: the rows a View reads all come from one
// commit, even when commits land between its statements.
func TestViewSnapshotIsStable(t *testing.T) {
	t.Parallel()
	s := openAt(t, filepath.Join(t.TempDir(), "store.db"))
	ctx := context.Background()
	put := func(plan string) {
		require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", Plan: plan})
		}))
	}
	put("v1")
	err := s.View(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		e, err := tx.GetEntitlement(ctx, "ent-1")
		require.NoError(t, err)
		require.Equal(t, "v1", e.Plan)
		put("v2") // commits while this View is open
		e, err = tx.GetEntitlement(ctx, "ent-1")
		require.NoError(t, err)
		assert.Equal(t, "v1", e.Plan, "a View's second read sees a later commit")
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, s.View(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		e, err := tx.GetEntitlement(ctx, "ent-1")
		require.NoError(t, err)
		assert.Equal(t, "v2", e.Plan)
		return nil
	}))
}

// BenchmarkReadBesideWrites measures the reads the processor makes before
// each API call (is the event processed, the entitlement, its account)
// while other goroutines commit, through View and, as the baseline,
// through InTx (the writer), in the same run.
func BenchmarkReadBesideWrites(b *testing.B) {
	for _, c := range []struct {
		name string
		read func(s *sqlitestore.Store) func(context.Context, func(context.Context, marketplace.Tx) error) error
	}{
		{"View", func(s *sqlitestore.Store) func(context.Context, func(context.Context, marketplace.Tx) error) error {
			return s.View
		}},
		{"InTx", func(s *sqlitestore.Store) func(context.Context, func(context.Context, marketplace.Tx) error) error {
			return s.InTx
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := openBench(sqlitestore.SyncFull)(b).(*sqlitestore.Store)
			defer s.Close()
			ctx := context.Background()
			now := time.Now()
			require.NoError(b, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
				for i := range 200 {
					id := strconv.Itoa(i)
					if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-" + id}); err != nil {
						return err
					}
					if err := tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-" + id, AccountID: "acct-" + id, UpdateTime: now}); err != nil {
						return err
					}
				}
				return nil
			}))
			// Two writers commit as fast as they can meanwhile.
			stop := make(chan struct{})
			var writers sync.WaitGroup
			var commits atomic.Int64
			for w := range 2 {
				writers.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						err := s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
							_, err := tx.MarkProcessed(ctx, fmt.Sprintf("w%d-%d", w, i), now)
							return err
						})
						if err != nil {
							b.Error(err)
							return
						}
						commits.Add(1)
					}
				})
			}
			read := c.read(s)
			runWorkers(b, 8, func(i int) error {
				id := strconv.Itoa(i % 200)
				return read(ctx, func(ctx context.Context, tx marketplace.Tx) error {
					if _, err := tx.IsProcessed(ctx, "ev-"+strconv.Itoa(i)); err != nil {
						return err
					}
					e, err := tx.GetEntitlement(ctx, "ent-"+id)
					if err != nil {
						return err
					}
					_, err = tx.GetAccount(ctx, e.AccountID)
					return err
				})
			})
			close(stop)
			writers.Wait()
			b.ReportMetric(float64(commits.Load())/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
