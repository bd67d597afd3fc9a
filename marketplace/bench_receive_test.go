package marketplace_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
)

// The Receive benchmarks run the same b.N messages as BenchmarkProcessor
// and BenchmarkBareLoop (bench_test.go), but through the real pubsub/v2
// Subscriber, so the client's cost (streaming pull, flow control, callback
// scheduling, batched acks and receipt modacks) is on both sides of the
// comparison.
//
// Why fastSub (fastpull_test.go) and not pstest: pstest delivers one
// message per 10 ms tick per stream, so a pstest benchmark measures
// pstest (~60-100 msg/s). fastSub serves a preloaded subscription over an
// in-memory gRPC connection as fast as flow control allows.
//
// Measured: from the first pull until the fake has received the ack of
// every message (including the client's last ack batch, which it sends up
// to 100 ms after the callback), for the processor on sqlitestore or
// memstore, or for the bare loop (decode, GET the entitlement from the
// emulator, ack). Not measured: the network and the real service (its
// latency, its pacing, ack deadlines), the publisher, TLS and auth.
//
// Each benchmark has two variants:
//   - serverfc: the fake enforces the client's max_outstanding_messages per
//     stream, as Pub/Sub does. Since the client sends acks in batches every
//     100 ms, a stream then delivers at most MaxOutstandingMessages per ack
//     round trip: ~32/0.1 s = ~320 msg/s here, whatever the callback costs.
//     This is what a deployment sees.
//   - clientfc: the fake ignores those limits; only the client's flow
//     control (32 callbacks at once) limits throughput, so the callbacks'
//     cost shows. This is the comparison between processor and bare loop.
//     The last ack batch adds up to 100 ms to each run: use a large b.N
//     (e.g. -bench 'Receive.*/clientfc' -benchtime 20000x) for ratios.

// receiveStreams is the processor's default Config.ReceiveStreams, which the
// bare loop copies.
const receiveStreams = 1

// receiveBench runs b.N messages (from setup) through run, which must
// consume the fake's subscription until its context is cancelled, once
// per flow-control variant.
func receiveBench(b *testing.B, setup func(b *testing.B) (*procEnv, []marketplace.Message),
	run func(ctx context.Context, env *procEnv, sub *pubsub.Subscriber) error) {
	for _, v := range []struct {
		name     string
		serverFC bool
	}{{"serverfc", true}, {"clientfc", false}} {
		b.Run(v.name, func(b *testing.B) {
			env, msgs := setup(b)
			data := make([][]byte, len(msgs))
			for i, m := range msgs {
				data[i] = m.Data
			}
			fake, client := newFastSub(b, data)
			fake.noServerFlowControl = !v.serverFC
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- run(ctx, env, client.Subscriber(fastSubName)) }()
			select {
			case <-fake.Done():
			case err := <-done:
				b.Fatalf("Receive returned early: %v", err)
			case <-time.After(10 * time.Minute):
				b.Fatalf("%d of %d messages acknowledged after 10 minutes", fake.Acked(), len(data))
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(data))/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(fake.Redeliveries()), "redeliveries")
		})
	}
}

func receiveProcessor(ctx context.Context, env *procEnv, sub *pubsub.Subscriber) error {
	return marketplace.ReceiveOnly(env.proc, ctx, sub) // Run without its Reconcile at start, which would settle the entitlements first
}

// BenchmarkReceiveProcessor: the processor on sqlitestore, through Receive.
func BenchmarkReceiveProcessor(b *testing.B) {
	receiveBench(b, func(b *testing.B) (*procEnv, []marketplace.Message) {
		return benchSetup(b)
	}, receiveProcessor)
}

// BenchmarkReceiveProcessorMemstore: the processor on memstore, through
// Receive.
func BenchmarkReceiveProcessorMemstore(b *testing.B) {
	receiveBench(b, func(b *testing.B) (*procEnv, []marketplace.Message) {
		return benchSetupStore(b, memstore.New())
	}, receiveProcessor)
}

// BenchmarkReceiveBareLoop is the floor: a Subscriber with the settings
// Receive would give it, whose callback decodes, GETs the entitlement and
// acknowledges.
func BenchmarkReceiveBareLoop(b *testing.B) {
	receiveBench(b, func(b *testing.B) (*procEnv, []marketplace.Message) { return benchSetup(b) },
		func(ctx context.Context, env *procEnv, sub *pubsub.Subscriber) error {
			sub.ReceiveSettings.MaxOutstandingMessages = benchWorkers
			sub.ReceiveSettings.NumGoroutines = receiveStreams
			return sub.Receive(ctx, func(ctx context.Context, m *pubsub.Message) {
				ev, err := events.Decode(m.Data)
				if err != nil {
					m.Ack()
					return
				}
				if _, err := env.client.GetEntitlement(ctx, ev.Resource().ID); err != nil {
					m.Nack()
					return
				}
				m.Ack()
			})
		})
}
