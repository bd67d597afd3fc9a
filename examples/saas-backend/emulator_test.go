package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// unsteadyWall is a wall clock as a loaded machine shows it to a goroutine
// that reads a ticker: every third reading is a step back, every fifth
// repeats the previous one.
type unsteadyWall struct {
	mu    sync.Mutex
	n     int
	last  time.Time
	backs int
}

func (w *unsteadyWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	switch {
	case w.n%5 == 0 && !w.last.IsZero():
		// stalled
	case w.n%3 == 0:
		w.last = time.Now().Add(-300 * time.Millisecond)
		w.backs++
	default:
		w.last = time.Now()
	}
	return w.last
}

// -emulator used to panic ("Clock.Advance with a negative duration") when
// the goroutine that follows the wall clock saw time go back, which a busy
// machine produces. Here it runs with one P, a CPU hog and a wall clock that
// steps back and stalls, while customers buy: it keeps serving, its clock
// keeps moving forward, and it shuts down cleanly.
func TestEmulatorSurvivesUnsteadyWallClockUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	stopHog := make(chan struct{})
	var hogs sync.WaitGroup
	for range 2 {
		hogs.Go(func() {
			for {
				select {
				case <-stopHog:
					return
				default:
					for i := 0; i < 1e5; i++ {
						_ = i * i
					}
				}
			}
		})
	}
	defer hogs.Wait()
	defer close(stopHog)

	wall := &unsteadyWall{}
	b, _ := startBackendWallClock(t, wall.now)
	start := b.emu.Clock().Now()
	deadline := time.Now().Add(2 * time.Second)
	prev := start
	for time.Now().Before(deadline) {
		status, body := get(t, b.url+"/emulator/checkout")
		require.Equal(t, http.StatusOK, status, body)
		status, body = get(t, b.url+"/healthz")
		require.Equal(t, http.StatusOK, status, body)
		now := b.emu.Clock().Now()
		require.False(t, now.Before(prev), "the emulator's clock went back from %v to %v", prev, now)
		prev = now
	}
	wall.mu.Lock()
	backs := wall.backs
	wall.mu.Unlock()
	assert.Positive(t, backs, "the wall clock stepped back during the test")
	assert.True(t, b.emu.Clock().Now().After(start), "the emulator's clock follows the wall clock")
	status, body := get(t, b.url+"/readyz")
	assert.Equal(t, http.StatusOK, status, body)
	assert.False(t, strings.Contains(body, "panic"))
}

// runServe runs serve with args and env until stop, which returns serve's
// error. If serve fails before it is ready, runServe returns that error and
// a nil backend.
func runServe(t *testing.T, args []string, env map[string]string) (b *backend, stop func() error, err error) {
	t.Helper()
	b, out, stop, err := exampletest.Start(t, func(ctx context.Context, out io.Writer, ready func(*backend)) error {
		return serve(ctx, args, func(k string) string { return env[k] }, out, ready)
	})
	if err != nil {
		t.Logf("backend logs:\n%s", out)
	}
	return b, stop, err
}

// -emulator without -database uses a temporary database, deleted at exit:
// never $DATABASE_URL and never ./marketplace.db. Restarting -emulator in
// the same directory used to reopen ./marketplace.db, and the start-up
// Reconcile purged every customer of the earlier run.
func TestEmulatorDatabaseIsTemporary(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	production := filepath.Join(t.TempDir(), "production.db")
	b, stop, err := runServe(t, []string{"-emulator", "-listen", "127.0.0.1:0"}, map[string]string{envDatabase: production})
	require.NoError(t, err)
	checkout(t, b)
	used := b.cfg.DatabaseURL
	assert.FileExists(t, used)
	assert.NotEqual(t, production, used)
	require.NoError(t, stop())

	assert.NoFileExists(t, production, "$DATABASE_URL was not touched")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing was written in the working directory")
	assert.NoDirExists(t, filepath.Dir(used), "the temporary database is deleted at exit")
}

// A database given with -database to one -emulator run holds the customers
// of that emulator, which the next run's emulator has never heard of. The
// second run is refused at start-up, and the customers stay.
func TestEmulatorRestartOnSameDatabasePurgesNothing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "marketplace.db")
	args := []string{"-emulator", "-listen", "127.0.0.1:0", "-database", db}
	b, stop, err := runServe(t, args, nil)
	require.NoError(t, err)
	checkout(t, b)
	require.NoError(t, stop())
	before := storedEntitlements(t, db)
	require.Len(t, before, 1)

	_, _, err = runServe(t, args, nil)
	require.ErrorIs(t, err, marketplace.ErrForeignStore)
	assert.Equal(t, before, storedEntitlements(t, db), "nothing was purged")
}

func storedEntitlements(t *testing.T, path string) []marketplace.Entitlement {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	var out []marketplace.Entitlement
	require.NoError(t, s.InTx(t.Context(), func(ctx context.Context, tx marketplace.Tx) error {
		out, err = tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		return err
	}))
	return out
}
