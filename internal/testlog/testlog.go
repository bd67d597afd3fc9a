// Package testlog helps tests read what the SDK logs.
package testlog

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// Buffer is a concurrency-safe log destination.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// CaptureDefault makes slog.Default() write text records of every level
// to the returned Buffer until the test ends. slog.Default is process-wide:
// a test calling it must not run in parallel (no t.Parallel), so that no
// other test logs there meanwhile.
func CaptureDefault(t testing.TB) *Buffer {
	t.Helper()
	old := slog.Default()
	b := &Buffer{}
	slog.SetDefault(slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return b
}
