package main

import (
	"context"
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

// -emulator without -database uses a temporary database, deleted at exit:
// never $DATABASE_URL and never ./marketplace.db. Restarting -emulator in
// the same directory used to reopen ./marketplace.db, and the start-up
// Reconcile purged every customer of the earlier run.
func TestEmulatorDatabaseIsTemporary(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	production := filepath.Join(t.TempDir(), "production.db")
	env := map[string]string{envDatabase: production}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	ready := make(chan *backend, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-emulator", "-listen", "127.0.0.1:0"}, func(k string) string { return env[k] }, out,
			func(b *backend) { ready <- b })
	}()
	var b *backend
	select {
	case b = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, out)
	}
	checkout(t, b)
	used := b.cfg.DatabaseURL
	assert.FileExists(t, used)
	assert.NotEqual(t, production, used)
	cancel()
	require.NoError(t, <-done, out.String())

	assert.NoFileExists(t, production, "$DATABASE_URL was not touched")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing was written in the working directory")
	assert.NoDirExists(t, filepath.Dir(used), "the temporary database is deleted at exit")
}
