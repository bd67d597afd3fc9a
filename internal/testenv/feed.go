package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// MessageHandler is what a Feed delivers to: a *marketplace.Processor.
type MessageHandler interface {
	HandleMessage(ctx context.Context, m marketplace.Message) error
}

// Feed hands what an emulator published (Server.Published) to a processor,
// in place of Pub/Sub: each event once and in order (Drain), or like a
// misbehaving Pub/Sub (DrainChaos). It remembers how far it has fed. It is
// safe for concurrent use, but a Drain is meant to run alone.
type Feed struct {
	srv *marketplacetest.Server
	mu  sync.Mutex
	fed int // Published() entries already handed out
}

// NewFeed returns a Feed of what srv publishes from now on and has
// published so far.
func NewFeed(srv *marketplacetest.Server) *Feed { return &Feed{srv: srv} }

// Next returns the published events not yet handed out, as messages. A
// message's ID is its event id and its index in the batch ("id/0"), its
// PublishTime the emulator's time of publication.
func (f *Feed) Next() []marketplace.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	pub := f.srv.Published()
	var out []marketplace.Message
	for _, p := range pub[f.fed:] {
		out = append(out, marketplace.Message{ID: p.EventID + "/" + fmt.Sprint(len(out)), Data: p.Data, PublishTime: p.At})
	}
	f.fed = len(pub)
	return out
}

// Rewind makes the Feed hand out the whole history again, from the first
// event published.
func (f *Feed) Rewind() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fed = 0
}

// Drain delivers every new event to h, in order, until no new one is
// published (a processor's approvals publish more); an error fails the
// test.
func (f *Feed) Drain(tb testing.TB, ctx context.Context, h MessageHandler) {
	tb.Helper()
	for {
		msgs := f.Next()
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			if err := h.HandleMessage(ctx, m); err != nil {
				tb.Fatalf("testenv: HandleMessage(%s): %v", m.ID, err)
			}
		}
	}
}

// DrainChaos is Drain through a misbehaving Pub/Sub: each new event is
// delivered one to three times, shuffled by rng, by workers goroutines at
// once. Any error fails the test.
func (f *Feed) DrainChaos(tb testing.TB, ctx context.Context, h MessageHandler, rng *rand.Rand, workers int) {
	tb.Helper()
	for {
		msgs := f.Next()
		if len(msgs) == 0 {
			return
		}
		var deliveries []marketplace.Message
		for _, m := range msgs {
			for range 1 + rng.IntN(3) {
				deliveries = append(deliveries, m)
			}
		}
		rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
		if errs := deliverAll(ctx, h, deliveries, workers); len(errs) > 0 {
			tb.Fatalf("testenv: HandleMessage failed %d times, first: %v", len(errs), errs[0])
		}
	}
}

// deliverAll hands deliveries to h from workers goroutines and returns the
// errors.
func deliverAll(ctx context.Context, h MessageHandler, deliveries []marketplace.Message, workers int) []error {
	work := make(chan marketplace.Message)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for m := range work {
				if err := h.HandleMessage(ctx, m); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, m := range deliveries {
		work <- m
	}
	close(work)
	wg.Wait()
	return errs
}
