// Package exampletest is what the examples' tests share: running an
// example's serve function in the background, against its in-process
// emulator, until the test ends, and collecting what it writes.
package exampletest

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SyncBuffer collects what an example writes from its goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Timeout bounds how long an example may take to be ready, and to stop.
const Timeout = 30 * time.Second

// ServeFunc is an example's serve function: it writes its logs to out,
// calls ready with what the test drives once it serves, and returns when ctx
// is done.
type ServeFunc[T any] func(ctx context.Context, out io.Writer, ready func(T)) error

// Start runs serve in the background and returns what it passed to ready,
// its output, and stop, which cancels serve's context and returns serve's
// error. If serve returns before it is ready, Start returns that error (and
// a nil stop); if it is not ready within Timeout, the test fails. serve's
// context is cancelled when the test ends.
func Start[T any](tb testing.TB, serve ServeFunc[T]) (v T, out *SyncBuffer, stop func() error, err error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	out = &SyncBuffer{}
	ready := make(chan T, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, out, func(v T) { ready <- v }) }()
	select {
	case v = <-ready:
	case err := <-done:
		cancel()
		return v, out, nil, err
	case <-time.After(Timeout):
		cancel()
		tb.Fatalf("not ready within %s\n%s", Timeout, out)
	}
	return v, out, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(Timeout):
			tb.Fatalf("did not stop within %s\n%s", Timeout, out)
			return nil
		}
	}, nil
}

// Serve is Start for a serve that must start and, when the test ends, stop
// cleanly: serve returns nil and its output then contains stopped (unless
// empty). On failure, the output is logged.
func Serve[T any](tb testing.TB, stopped string, serve ServeFunc[T]) (T, *SyncBuffer) {
	tb.Helper()
	v, out, stop, err := Start(tb, serve)
	if err != nil {
		tb.Fatalf("serve: %v\n%s", err, out)
	}
	tb.Cleanup(func() {
		require.NoError(tb, stop(), "shutdown\n%s", out)
		if stopped != "" {
			assert.Contains(tb, out.String(), stopped)
		}
		if tb.Failed() {
			tb.Logf("logs:\n%s", out)
		}
	})
	return v, out
}
