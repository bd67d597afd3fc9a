package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// pruneEvery is how often Run prunes processed event ids.
const pruneEvery = time.Hour

// lifecycle is the state Run, WaitIdle and Close share.
type lifecycle struct {
	mu      sync.Mutex
	closed  bool
	stop    chan struct{} // closed by Close
	running chan struct{} // closed when the running Run returns; nil if none runs

	// Messages in flight (HandleMessage calls), and a channel closed when
	// their number drops to zero.
	inFlight int
	idle     chan struct{}
}

func newLifecycle() lifecycle {
	idle := make(chan struct{})
	close(idle)
	return lifecycle{stop: make(chan struct{}), idle: idle}
}

// enter counts a message in flight, unless the processor is closed.
func (l *lifecycle) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.inFlight == 0 {
		l.idle = make(chan struct{})
	}
	l.inFlight++
	return true
}

// leave ends a message entered.
func (l *lifecycle) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight--; l.inFlight == 0 {
		close(l.idle)
	}
}

// Run is the processor's running life. It
//
//  1. reconciles local state with the Procurement API (Reconcile), for
//     what changed while no processor ran; a failure is logged and Run
//     goes on (messages still settle each resource), except a store
//     holding another Marketplace's state (ErrForeignStore), which Run
//     returns at once;
//  2. receives messages from sub, if it is not nil, and processes each
//     with HandleMessage, acknowledging it after its commit and nacking it
//     when processing failed, so that Pub/Sub redelivers it; with a push
//     subscription, pass nil and serve PushHandler: Run then only does
//     the rest;
//  3. prunes processed event ids older than Config.Retention, at start
//     and hourly.
//
// It returns when ctx is done or Close is called (nil), or when the
// subscription fails, and only after the messages in flight have been
// acknowledged or nacked: when ctx ends, Pub/Sub stops delivering and the
// callbacks running see their context cancelled; a message whose callbacks
// have all returned is still committed and acknowledged, one interrupted
// earlier is nacked. Nothing is acknowledged unprocessed.
//
// Run sets sub.ReceiveSettings.MaxOutstandingMessages from
// Config.Concurrency (flow control) and NumGoroutines from
// Config.ReceiveStreams; other ReceiveSettings are yours. One Run at a time
// per Processor; after Close, Run returns an error matching ErrClosed.
func (p *Processor) Run(ctx context.Context, sub *pubsub.Subscriber) error {
	done, err := p.startRun()
	if err != nil {
		return err
	}
	defer close(done)
	p.health.started(sub != nil, p.cfg.now())
	defer p.health.stopped()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.life.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	if err := p.checkOrigin(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return fmt.Errorf("marketplace: Run: %w", err) // before taking any message
	}
	if _, err := p.Reconcile(ctx); err != nil {
		if errors.Is(err, ErrForeignStore) {
			return fmt.Errorf("marketplace: Run: %w", err)
		}
		if ctx.Err() == nil {
			p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: reconcile at start incomplete; messages and the next Reconcile settle the rest",
				slog.String("error", err.Error()))
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() { p.pruneLoop(ctx) })
	defer func() {
		cancel() // the subscription may have failed with ctx still live
		wg.Wait()
	}()
	if sub == nil {
		<-ctx.Done()
		return p.WaitIdle(context.WithoutCancel(ctx))
	}
	if err := p.receive(ctx, sub); err != nil {
		return err
	}
	return p.WaitIdle(context.WithoutCancel(ctx))
}

// startRun marks Run running, or says why it cannot run.
func (p *Processor) startRun() (chan struct{}, error) {
	p.life.mu.Lock()
	defer p.life.mu.Unlock()
	switch {
	case p.life.closed:
		return nil, fmt.Errorf("marketplace: Run: processor closed: %w", ErrClosed)
	case p.life.running != nil:
		select {
		case <-p.life.running:
		default:
			return nil, fmt.Errorf("marketplace: Run: already running: %w", ErrInvalid)
		}
	}
	p.life.running = make(chan struct{})
	return p.life.running, nil
}

// receive pulls messages from sub until ctx is done or the subscription
// fails.
func (p *Processor) receive(ctx context.Context, sub *pubsub.Subscriber) error {
	sub.ReceiveSettings.MaxOutstandingMessages = p.cfg.concurrency
	sub.ReceiveSettings.NumGoroutines = p.cfg.streams
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
		err = fmt.Errorf("marketplace: receiving from %s: %w", sub, err)
		p.health.failed(err, p.cfg.now())
		return err
	}
	return nil
}

// WaitIdle returns once no message is in flight (no HandleMessage call is
// running, whatever the transport), or ctx's error when ctx ends first.
// It does not know what Pub/Sub has yet to deliver: with Run pulling,
// a message published but not yet delivered is not in flight.
func (p *Processor) WaitIdle(ctx context.Context) error {
	p.life.mu.Lock()
	idle := p.life.idle
	p.life.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops Run and waits for it to return (see Run: messages in flight
// finish first), and unregisters the processor's metric callbacks. Later
// calls of Run and HandleMessage return an error matching ErrClosed
// (PushHandler answers 503); other methods keep working. It does not close
// the Store, the Procurement client or the usage reporter, which are the
// caller's. Calling Close more than once returns nil. Do not call it from
// a callback: it would wait for itself.
func (p *Processor) Close() error {
	p.life.mu.Lock()
	if p.life.closed {
		p.life.mu.Unlock()
		return nil
	}
	p.life.closed = true
	close(p.life.stop)
	running := p.life.running
	p.life.mu.Unlock()
	if running != nil {
		<-running
	}
	if p.gauges != nil {
		if err := p.gauges.Unregister(); err != nil {
			return fmt.Errorf("marketplace: Close: unregistering metric callbacks: %w", err)
		}
	}
	return nil
}

// prune deletes the processed event ids older than the retention period
// and returns how many it deleted.
func (p *Processor) prune(ctx context.Context) (int, error) {
	before := p.cfg.now().Add(-p.cfg.retention)
	var n int
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		n, err = tx.PruneProcessed(ctx, before)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("marketplace: pruning processed events: %w", err)
	}
	return n, nil
}

func (p *Processor) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		if n, err := p.prune(ctx); err != nil {
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
