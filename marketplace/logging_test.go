package marketplace_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// keyChecker is a slog.Handler that records, for every record, the keys it
// carries (those given to WithAttrs along the way and its own) and which of
// them repeat.
type keyChecker struct {
	log   *keyLog
	group string
	keys  []string // from WithAttrs
}

type keyLog struct {
	mu      sync.Mutex
	records int
	repeats []string // "message: key"
}

func (h *keyChecker) Enabled(context.Context, slog.Level) bool { return true }

func (h *keyChecker) WithAttrs(as []slog.Attr) slog.Handler {
	keys := append([]string(nil), h.keys...)
	for _, a := range as {
		keys = append(keys, h.group+a.Key)
	}
	return &keyChecker{log: h.log, group: h.group, keys: keys}
}

func (h *keyChecker) WithGroup(name string) slog.Handler {
	return &keyChecker{log: h.log, group: h.group + name + ".", keys: h.keys}
}

func (h *keyChecker) Handle(_ context.Context, r slog.Record) error {
	keys := append([]string(nil), h.keys...)
	r.Attrs(func(a slog.Attr) bool {
		keys = append(keys, h.group+a.Key)
		return true
	})
	h.log.mu.Lock()
	defer h.log.mu.Unlock()
	h.log.records++
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			h.log.repeats = append(h.log.repeats, r.Message+": "+k)
		}
		seen[k] = true
	}
	return nil
}

// Every log line of the processor carries each key once, on every path
// that adds context at two levels: a sign-up and the entitlements it
// settles, an operator's decision, Reconcile, and purges from a message and
// from Reconcile (issue 19, item 9: account_id and source appeared twice).
func TestLogLinesRepeatNoKey(t *testing.T) {
	t.Parallel()
	log := &keyLog{}
	env := newProcEnv(t, withProc(marketplace.Config{Runtime: gcpmarketplace.Runtime{Logger: slog.New(&keyChecker{log: log})}, Policy: marketplace.ManualApproval("review")}))

	acctA, entA := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()                                         // parked until sign-up
	env.signup(acctA)                                   // sign-up settles the parked entitlement: queued
	require.NoError(t, env.proc.Approve(env.ctx, entA)) // operator
	env.drain()

	acctB, _ := env.purchase(marketplacetest.PurchaseParams{})
	env.newMessages() // lost: Reconcile finds them
	_, err := env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	env.signup(acctB)

	require.NoError(t, env.srv.DeleteAccount(env.ctx, acctA))
	env.drain() // purge from a message
	require.NoError(t, env.srv.DeleteAccount(env.ctx, acctB))
	env.newMessages()
	_, err = env.proc.Reconcile(env.ctx) // purge from Reconcile
	require.NoError(t, err)
	require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("bad", "{")))

	log.mu.Lock()
	defer log.mu.Unlock()
	assert.Greater(t, log.records, 10, "the paths above log")
	assert.Empty(t, log.repeats, "keys repeated on a log line")
}

// Without WithLogger the processor and the sign-up verifier log to
// slog.Default(), as the Go ecosystem does; they used to discard, so a
// poisoned message printed nothing (issue 19, item 6). Not parallel: it
// replaces the process's default logger.
func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	logs := testlog.CaptureDefault(t)
	env := newProcEnv(t)
	require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("bad", "{")))
	assert.Contains(t, logs.String(), "undecodable message recorded as poison")
}
