package marketplace_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// startReceive runs proc.Run on the emulator's subscription until the
// returned stop is called; stop returns Run's error.
func startReceive(t *testing.T, env *procEnv, proc *marketplace.Processor) (stop func() error) {
	t.Helper()
	client, err := pubsub.NewClient(env.ctx, "vendor-project", env.srv.PubSubOptions()...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithCancel(env.ctx)
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx, client.Subscriber(env.srv.Subscription())) }()
	var stopped bool
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after its context was cancelled")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitAcked waits until every event the emulator published (duplicates
// included, those held for reordering flushed) has been acknowledged.
func waitAcked(t *testing.T, env *procEnv) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		env.srv.Flush()
		all := true
		for _, p := range env.srv.Published() {
			if p.MessageID == "" {
				all = false
				break
			}
			m := env.srv.PubSub().Message(p.MessageID)
			if m == nil || m.Acks == 0 {
				all = false
				break
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range env.srv.Published() {
				if m := env.srv.PubSub().Message(p.MessageID); m != nil {
					t.Logf("%s %s deliveries=%d acks=%d modacks=%+v", p.EventType, p.MessageID, m.Deliveries, m.Acks, m.Modacks)
				}
			}
			t.Fatal("messages not all acknowledged within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The scripted lifecycle of 24 customers through the real Pub/Sub v2
// Subscriber on pstest, with duplicated and reordered deliveries.
func TestReceiveLifecycleThroughPubSub(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t,
		withServer(marketplacetest.WithDuplicateDeliveries(0.3), marketplacetest.WithReorder(5), marketplacetest.WithSeed(3)),
		withProc(marketplace.Config{Policy: lifecyclePolicy, ReceiveStreams: 4, Concurrency: 8}))
	stop := startReceive(t, env, env.proc)
	want := lifecycleScript(t, env, 24, func() { waitAcked(t, env) })
	require.NoError(t, stop())
	require.Equal(t, want, env.rec.counts())
	env.requireInSync()
	dups := 0
	for _, p := range env.srv.Published() {
		if p.Duplicate {
			dups++
		}
	}
	assert.Positive(t, dups, "the emulator duplicated deliveries")
}

// An undecodable message is acknowledged and recorded, not redelivered.
func TestReceivePoisonIsAcked(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	stop := startReceive(t, env, env.proc)
	id := env.srv.PubSub().Publish(env.srv.Topic(), []byte("\x00garbage"), nil)
	require.Eventually(t, func() bool {
		m := env.srv.PubSub().Message(id)
		return m != nil && m.Acks == 1
	}, 10*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // a redelivery would come within pstest's 10 ms tick
	require.NoError(t, stop())
	assert.Equal(t, 1, env.srv.PubSub().Message(id).Deliveries)
	p := env.poison()
	require.Len(t, p, 1)
	assert.Equal(t, id, p[0].MessageID)
}

// Shutdown while a callback runs: the callback sees its context cancelled,
// the message is nacked (never acknowledged unprocessed), and a later
// Receive processes it.
func TestReceiveShutdownNacksInFlight(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	entered := make(chan struct{}, 10)
	env.rec.setFail(func(ctx context.Context, c *marketplace.Change) error {
		if c.Type == tAccountActive {
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	stop := startReceive(t, env, env.proc)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("callback not reached")
	}
	require.NoError(t, stop())
	msg := env.srv.Published()[0]
	assert.Equal(t, 0, env.srv.PubSub().Message(msg.MessageID).Acks, "not acknowledged")
	_, ok := env.localAccount(acct)
	assert.False(t, ok, "nothing committed")

	// Pub/Sub redelivers it once its lease expires (pstest: up to a minute
	// or more), to whichever process is then receiving.
	env.rec.setFail(nil)
	require.NoError(t, env.proc.HandleMessage(env.ctx, marketplace.Message{ID: msg.MessageID, Data: msg.Data}))
	assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(acct))
}
