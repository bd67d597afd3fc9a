package marketplace

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// pruneEvery is how often Receive prunes processed event ids.
const pruneEvery = time.Hour

// Receive pulls messages from sub and processes each with HandleMessage,
// acknowledging it after its commit and not acknowledging (nacking) it when
// processing failed, so that Pub/Sub redelivers it. It blocks until ctx is
// done (it then returns nil) or the subscription fails.
//
// It sets sub.ReceiveSettings.MaxOutstandingMessages from WithConcurrency
// (flow control: at most that many messages in flight) and NumGoroutines
// from WithReceiveStreams; other ReceiveSettings are yours. Each Subscriber
// may run one Receive at a time.
//
// Shutdown: when ctx is done, Pub/Sub stops delivering and the callbacks
// running see their context cancelled. A message whose callbacks have all
// returned is still committed and acknowledged; one interrupted earlier is
// nacked. Receive returns once every message in flight has been
// acknowledged or nacked: nothing is acknowledged unprocessed.
//
// Receive also prunes processed event ids older than the retention period
// (WithRetention), at start and hourly.
func (p *Processor) Receive(ctx context.Context, sub *pubsub.Subscriber) error {
	if sub == nil {
		return fmt.Errorf("marketplace: Receive: nil Subscriber: %w", ErrInvalid)
	}
	if err := p.checkOrigin(ctx); err != nil {
		return fmt.Errorf("marketplace: Receive: %w", err) // before taking any message
	}
	sub.ReceiveSettings.MaxOutstandingMessages = p.cfg.concurrency
	sub.ReceiveSettings.NumGoroutines = p.cfg.streams

	pruneCtx, stopPrune := context.WithCancel(ctx)
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		p.pruneLoop(pruneCtx)
	}()
	defer func() {
		stopPrune()
		<-pruned
	}()

	err := sub.Receive(ctx, func(ctx context.Context, m *pubsub.Message) {
		msg := Message{ID: m.ID, Data: m.Data, Attributes: m.Attributes, PublishTime: m.PublishTime}
		if m.DeliveryAttempt != nil {
			msg.DeliveryAttempt = *m.DeliveryAttempt
		}
		if err := p.HandleMessage(ctx, msg); err != nil {
			m.Nack()
			return
		}
		m.Ack()
	})
	if err != nil {
		return fmt.Errorf("marketplace: receiving from %s: %w", sub, err)
	}
	return nil
}

func (p *Processor) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if n, err := p.Prune(ctx); err != nil {
			if ctx.Err() == nil {
				p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: pruning processed events failed", slog.String("error", err.Error()))
			}
		} else if n > 0 {
			p.logger.LogAttrs(ctx, slog.LevelDebug, "marketplace: pruned processed events", slog.Int("deleted", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
