package marketplace_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// benchWorkers is how many messages are in flight at once, as with
// Receive's flow control.
const benchWorkers = 32

// benchSetup returns a processor on sqlitestore (synchronous=FULL, the
// default) and b.N pre-generated messages with distinct eventIds about 200
// active entitlements the processor has not seen yet: the first message
// about each is a change (stored, OnEntitlementActive), a quarter are
// ENTITLEMENT_RENEWED (a callback and a commit), the rest reveal nothing
// new (stale: no write).
func benchSetup(b *testing.B) (*procEnv, []marketplace.Message) {
	b.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = store.Close() })
	return benchSetupStore(b, store)
}

func benchSetupStore(b *testing.B, store marketplace.Store) (*procEnv, []marketplace.Message) {
	b.Helper()
	ctx := context.Background()
	// As many messages in flight as feed hands out (HandleMessage waits
	// beyond Config.Concurrency).
	env := newProcEnv(b, withStore(store), withProc(marketplace.Config{Concurrency: benchWorkers}))
	var ids []string
	for range 200 {
		acct, err := env.srv.CreateAccount(ctx)
		require.NoError(b, err)
		_, err = env.client.ApproveAccountSignup(ctx, acct)
		require.NoError(b, err)
		_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
		_, err = env.client.ApproveEntitlement(ctx, ent, nil)
		require.NoError(b, err)
		ids = append(ids, ent)
	}
	types := []events.Type{tActive, tRenewed, tPlanChanged, tCreationRequested}
	msgs := make([]marketplace.Message, b.N)
	for i := range msgs {
		body := fmt.Sprintf(`{"eventId":"BENCH-%d","eventType":%q,"providerId":%q,"entitlement":{"id":%q,"updateTime":"2026-01-05T09:00:00Z"}}`,
			i, types[i%len(types)], env.srv.ProviderID(), ids[i%len(ids)])
		msgs[i] = marketplace.Message{ID: fmt.Sprint(i), Data: []byte(body)}
	}
	return env, msgs
}

// feed hands msgs to handle from benchWorkers goroutines and reports the
// rate.
func feed(b *testing.B, msgs []marketplace.Message, handle func(context.Context, marketplace.Message) error) {
	b.Helper()
	ctx := context.Background()
	work := make(chan marketplace.Message, benchWorkers)
	var wg sync.WaitGroup
	var failed sync.Once
	b.ResetTimer()
	for range benchWorkers {
		wg.Go(func() {
			for m := range work {
				if err := handle(ctx, m); err != nil {
					failed.Do(func() { b.Error(err) })
				}
			}
		})
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(len(msgs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkProcessor: the full pipeline (decode, lock, dedupe read, GET
// from the emulator, updateTime guard, callbacks, commit to SQLite).
func BenchmarkProcessor(b *testing.B) {
	env, msgs := benchSetup(b)
	feed(b, msgs, env.proc.HandleMessage)
}

// BenchmarkProcessorSyncNormal is the pipeline on sqlitestore with
// WithSynchronous(SyncNormal): commits survive a process crash but not a
// power loss, the trade-off the option offers.
func BenchmarkProcessorSyncNormal(b *testing.B) {
	store, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"),
		sqlitestore.WithSynchronous(sqlitestore.SyncNormal))
	require.NoError(b, err)
	b.Cleanup(func() { _ = store.Close() })
	env, msgs := benchSetupStore(b, store)
	feed(b, msgs, env.proc.HandleMessage)
}

// BenchmarkProcessorMemstore is the pipeline with the in-memory store: the
// processor's own overhead, without SQLite's.
func BenchmarkProcessorMemstore(b *testing.B) {
	env, msgs := benchSetupStore(b, memstore.New())
	feed(b, msgs, env.proc.HandleMessage)
}

// BenchmarkBareLoop is the floor: decode, GET the entitlement, acknowledge,
// fed the same messages the same way.
func BenchmarkBareLoop(b *testing.B) {
	env, msgs := benchSetup(b)
	feed(b, msgs, bareLoop(env))
}

// bareLoop handles a message as the floor does: decode, GET the
// entitlement, acknowledge.
func bareLoop(env *procEnv) func(context.Context, marketplace.Message) error {
	return func(ctx context.Context, m marketplace.Message) error {
		ev, err := events.Decode(m.Data)
		if err != nil {
			return nil
		}
		_, err = env.client.GetEntitlement(ctx, ev.Resource().ID)
		return err
	}
}

// apiLatencies are the assumed round trips to the Procurement API of
// BenchmarkAPILatency (not measurements of Google's). 0 is the loopback
// emulator alone, where the comparison is CPU-bound.
var apiLatencies = []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}

// slowGets makes every later entitlements.get wait d (real time; no CPU).
func slowGets(env *procEnv, d time.Duration) {
	if d <= 0 {
		return
	}
	env.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsGet,
		Kind: marketplacetest.FaultLatency, Latency: d, Times: -1})
}

// BenchmarkAPILatency compares the pipeline on sqlitestore with the bare
// loop, side by side in the same run, for each round trip in apiLatencies:
// on a real deployment each message waits for its GET to Google, and the
// ratio depends on how long that wait is against the CPU each message
// costs. It locates the round trip above which the processor keeps up with
// the bare loop on this machine.
//
//	go test -run '^$' -bench APILatency -benchtime 4000x ./marketplace
func BenchmarkAPILatency(b *testing.B) {
	for _, d := range apiLatencies {
		b.Run("rtt="+d.String(), func(b *testing.B) {
			b.Run("processor", func(b *testing.B) {
				env, msgs := benchSetup(b)
				slowGets(env, d)
				feed(b, msgs, env.proc.HandleMessage)
			})
			b.Run("bare", func(b *testing.B) {
				env, msgs := benchSetup(b)
				slowGets(env, d)
				feed(b, msgs, bareLoop(env))
			})
		})
	}
}
