package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Message is one Pub/Sub message as the processor needs it, whatever the
// transport (Run, PushHandler, or your own).
type Message struct {
	ID              string            // the Pub/Sub message id
	Data            []byte            // the Marketplace notification (JSON)
	Attributes      map[string]string // Pub/Sub attributes (Marketplace sets none)
	PublishTime     time.Time         // when Pub/Sub accepted it
	DeliveryAttempt int               // 1 for the first delivery; 0 if unknown
}

// Processor turns Marketplace notifications into exactly-once, in-order
// effects: local state in a Store, approvals through the Procurement API
// and callbacks of a Handler. See the package documentation for the
// pipeline and its guarantees. It is safe for concurrent use.
type Processor struct {
	store   Store
	client  *procurement.Client
	handler Handler
	cfg     config
	logger  *slog.Logger
	locks   keyedMutex
	locker  KeyLocker
	viewer  Viewer // the store's read-only transactions, if it has them
	metrics metrics
	gauges  metric.Registration // the gauges' callback, unregistered by Close; nil without a MeterProvider
	life    lifecycle           // Run, WaitIdle, Close (lifecycle.go)
	health  healthState         // what Health reports (health.go)
	// slots bounds the messages in flight (Config.Concurrency) whatever the
	// transport, so that ConnPool's sizing holds for PushHandler and
	// custom transports as it does for Run.
	slots chan struct{}
	// unsettled holds the usage windows of entitlements with a message in
	// flight or awaiting redelivery (usage_confirm.go).
	unsettled *unsettled

	origin        Origin      // the Marketplace served, recorded in the store (origin.go)
	originChecked atomic.Bool // the store's Origin was found to be origin
}

// New returns a Processor that keeps its state in store, calls the
// Procurement API through client and reports changes to handler. cfg sets
// the logger, metrics and clock (its Runtime), the approval policy,
// concurrency, retention and usage reporter; nil means every default.
// Start it with Run; Close stops it.
//
// If store implements KeyLocker (stores shared by several processes do),
// the processor also takes its lock for every resource it works on; if it
// also implements ConnPool, New fails with an error wrapping ErrInvalid
// when the pool is too small for the concurrency (see ConnPool). If it
// implements Viewer (sqlitestore does), the processor reads local state in
// read-only transactions, which do not queue behind commits.
func New(store Store, client *procurement.Client, handler Handler, cfg *Config) (*Processor, error) {
	switch {
	case store == nil:
		return nil, fmt.Errorf("marketplace: New: nil Store: %w", ErrInvalid)
	case client == nil:
		return nil, fmt.Errorf("marketplace: New: nil procurement.Client: %w", ErrInvalid)
	case handler == nil:
		return nil, fmt.Errorf("marketplace: New: nil Handler: %w", ErrInvalid)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	c := newConfig(cfg)
	p := &Processor{store: store, client: client, handler: handler, cfg: c,
		logger: slog.New(newUniqueKeys(cfg.Log().Handler())), life: newLifecycle(),
		slots: make(chan struct{}, c.concurrency), unsettled: newUnsettled(c.now),
		origin: originOf(client.ProviderID(), client.Service().BasePath)}
	if l, ok := store.(KeyLocker); ok {
		p.locker = l
		if err := checkPool(store, c.concurrency); err != nil {
			return nil, err
		}
	}
	if v, ok := store.(Viewer); ok {
		p.viewer = v
	}
	var err error
	if p.metrics, err = newMetrics(cfg.Meter(meterName)); err != nil {
		return nil, fmt.Errorf("marketplace: New: creating metrics: %w", err)
	}
	if cfg.MeterProvider != nil {
		if p.gauges, err = p.registerGauges(cfg.Meter(meterName)); err != nil {
			return nil, fmt.Errorf("marketplace: New: creating metrics: %w", err)
		}
	}
	p.wireUsage()
	return p, nil
}

// connsHeadroom is the connections a KeyLocker store's pool needs beyond
// two per message in flight: one more caller (CompleteSignup, Approve,
// Reject, Reconcile) and the usage reporter (see ConnPool).
const connsHeadroom = 2

// checkPool refuses a pool that processing concurrency messages at once
// can exhaust for good (see ConnPool), with the numbers that fix it.
func checkPool(store Store, concurrency int) error {
	cp, ok := store.(ConnPool)
	if !ok {
		return nil
	}
	have, need := cp.MaxConns(), 2*concurrency+connsHeadroom
	if have >= need {
		return nil
	}
	fix := fmt.Sprintf("raise the pool size (pgstore: pool_max_conns in the connection string, or pgxpool.Config.MaxConns) to at least %d", need)
	if n := (have - connsHeadroom) / 2; n >= 1 {
		fix += fmt.Sprintf(", or lower Config.Concurrency to at most %d", n)
	}
	return fmt.Errorf("marketplace: New: the store's connection pool holds %d connections, too few for concurrency %d "+
		"(each message in flight holds a key lock and a transaction, and %d more are needed for sign-ups, operator calls "+
		"and the usage reporter): %s: %w", have, concurrency, connsHeadroom, fix, ErrInvalid)
}

// PanicError is the error a panicking callback or policy is turned into.
// The message is not acknowledged, so it is redelivered.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the goroutine's stack where it panicked
}

// Error reports the panic value.
func (e *PanicError) Error() string {
	return fmt.Sprintf("marketplace: callback panicked: %v", e.Value)
}

// What started a unit of work, for logs.
const (
	sourceMessage        = "message"
	sourceRedrive        = "redrive" // a poison message run again: not deduplicated (ops.go)
	sourceSignup         = "signup"
	sourceReconcile      = "reconcile"
	sourceOperator       = "operator"
	sourceAccountDeleted = "account_deleted"
)

// outcome is what happened to one message, the metric it counts in.
type outcome string

const (
	outcomeProcessed outcome = "processed"
	outcomeDuplicate outcome = "duplicate"
	outcomeStale     outcome = "stale"
	outcomeNotFound  outcome = "not_found"
	outcomePoison    outcome = "poison"
	outcomeFailed    outcome = "failed"
)

// typeUndecodable labels messages that could not be decoded.
const typeUndecodable = "UNDECODABLE"

// HandleMessage processes one message and reports whether to acknowledge
// it: nil means acknowledge (processed, a duplicate, stale, or set aside as
// poison), an error means do not (Pub/Sub redelivers it later). It is the
// one entry point of every transport: Run and PushHandler call it, and so
// can your own transport.
//
// A message that cannot be decoded, or whose processing fails permanently
// (a callback error marked with events.Permanent, an invalid id, or any
// failure on the Config.PoisonAfter-th attempt) is recorded with the reason
// in the Store (see Poison and Redrive) and acknowledged, so it never
// loops.
//
// At most Config.Concurrency calls process a message at once; further
// calls wait for one of them to return, or for ctx to end, in which case
// they return ctx's error without processing the message. After Close it
// returns an error matching ErrClosed without processing the message.
func (p *Processor) HandleMessage(ctx context.Context, m Message) error {
	err := p.handleMessage(ctx, m)
	p.health.message(err, p.cfg.now())
	return err
}

// handleMessage is HandleMessage, without the bookkeeping of Health.
func (p *Processor) handleMessage(ctx context.Context, m Message) error {
	if !p.life.enter() {
		return fmt.Errorf("marketplace: message %s not processed: processor closed: %w", m.ID, ErrClosed)
	}
	defer p.life.leave()
	if err := p.acquireSlot(ctx); err != nil {
		err = fmt.Errorf("marketplace: message %s not processed: no room among the %d messages in flight: %w", m.ID, cap(p.slots), err)
		p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: message not processed; it will be redelivered",
			slog.String("message_id", m.ID), slog.String("error", err.Error()))
		return err
	}
	defer func() { <-p.slots }()
	if err := p.checkOrigin(ctx); err != nil {
		p.logger.LogAttrs(ctx, slog.LevelError, "marketplace: message not processed; it will be redelivered",
			slog.String("message_id", m.ID), slog.String("error", err.Error()))
		return fmt.Errorf("marketplace: message %s not processed: %w", m.ID, err)
	}
	start := time.Now()
	ev, err := events.Decode(m.Data)
	if err != nil {
		p.metrics.count(ctx, p.metrics.received, typeUndecodable)
		log := p.logger.With(slog.String("message_id", m.ID))
		if perr := p.recordPoison(ctx, m, nil, "undecodable: "+err.Error()); perr != nil {
			log.LogAttrs(ctx, slog.LevelError, "marketplace: cannot record undecodable message; it will be redelivered",
				slog.String("error", perr.Error()))
			p.metrics.finish(ctx, typeUndecodable, outcomeFailed, start)
			return perr
		}
		log.LogAttrs(ctx, slog.LevelWarn, "marketplace: undecodable message recorded as poison and acknowledged",
			slog.String("error", err.Error()))
		p.metrics.finish(ctx, typeUndecodable, outcomePoison, start)
		p.metrics.acked(ctx, typeUndecodable, m.PublishTime, p.cfg.now())
		return nil
	}
	typ := string(ev.Type())
	if typ == "" {
		typ = "ACCOUNT"
	}
	p.metrics.count(ctx, p.metrics.received, typ)
	log := p.logger.With(slog.String("message_id", m.ID), slog.String("event_id", ev.ID()), slog.String("event_type", typ))
	for _, pr := range ev.Problems() {
		log.LogAttrs(ctx, slog.LevelWarn, "marketplace: message field unreadable, ignored", slog.String("problem", pr.String()))
	}

	out, err := p.process(ctx, ev, sourceMessage, log)
	if err != nil {
		giveUp := permanent(err) || (p.cfg.poisonAfter > 0 && m.DeliveryAttempt >= p.cfg.poisonAfter)
		if !giveUp {
			log.LogAttrs(ctx, slog.LevelWarn, "marketplace: processing failed; message not acknowledged",
				slog.Int("delivery_attempt", m.DeliveryAttempt), slog.String("error", err.Error()))
			p.metrics.finish(ctx, typ, outcomeFailed, start)
			return err
		}
		if perr := p.recordPoison(ctx, m, ev, err.Error()); perr != nil {
			log.LogAttrs(ctx, slog.LevelError, "marketplace: cannot record poison message; it will be redelivered",
				slog.String("error", perr.Error()), slog.String("cause", err.Error()))
			p.metrics.finish(ctx, typ, outcomeFailed, start)
			return perr
		}
		log.LogAttrs(ctx, slog.LevelError, "marketplace: message failed permanently; recorded as poison and acknowledged",
			slog.Int("delivery_attempt", m.DeliveryAttempt), slog.String("error", err.Error()))
		out = outcomePoison
	}
	p.metrics.finish(ctx, typ, out, start)
	p.metrics.acked(ctx, typ, m.PublishTime, p.cfg.now())
	return nil
}

// acquireSlot waits for room among the messages in flight.
func (p *Processor) acquireSlot(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// permanent reports whether retrying cannot fix err.
func permanent(err error) bool {
	return events.IsPermanent(err) || errors.Is(err, procurement.ErrInvalidName) ||
		errors.Is(err, procurement.ErrReasonTooLong) || errors.Is(err, ErrInvalidDecision)
}

// recordPoison keeps a message in the Store's poison list and, for a decoded
// one, marks its eventId processed so that duplicates are skipped.
func (p *Processor) recordPoison(ctx context.Context, m Message, ev events.Event, reason string) error {
	ctx, cancel := p.commitContext(ctx)
	defer cancel()
	now := p.cfg.now()
	err := p.store.InTx(ctx, func(ctx context.Context, tx Tx) error {
		pm := Poison{MessageID: m.ID, Reason: reason, Data: m.Data, At: now}
		if len(pm.Data) > PoisonDataLimit {
			pm.Data = pm.Data[:PoisonDataLimit]
		}
		if ev != nil {
			pm.EventID = ev.ID()
			if _, err := tx.MarkProcessed(ctx, ev.ID(), now); err != nil {
				return err
			}
		}
		return tx.RecordPoison(ctx, pm)
	})
	if err != nil {
		return fmt.Errorf("marketplace: recording poison message %s: %w", m.ID, err)
	}
	return nil
}

// commitContext is the context of a commit made after callbacks ran: it
// outlives the caller's cancellation (a shutdown must not throw away work
// whose callbacks succeeded) but not the commit timeout.
func (p *Processor) commitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.cfg.commitTimeout)
}

// process settles what ev is about; source is sourceMessage, or
// sourceRedrive to skip deduplication.
func (p *Processor) process(ctx context.Context, ev events.Event, source string, log *slog.Logger) (outcome, error) {
	if u, ok := ev.(*events.Unknown); ok {
		return p.processUnknown(ctx, u, source, log)
	}
	r := ev.Resource()
	switch r.Kind {
	case events.ResourceEntitlement:
		done := p.unsettled.begin(r.ID)
		res, err := p.settleEntitlement(ctx, r.ID, entTrigger{source: source, ev: ev}, log)
		done(err == nil || permanent(err))
		return res.outcome, err
	case events.ResourceAccount:
		res, err := p.settleAccount(ctx, r.ID, accTrigger{source: source, ev: ev}, log)
		return res.outcome, err
	}
	return "", events.Permanent(fmt.Errorf("marketplace: event %s names no resource", ev.ID()))
}

// processUnknown hands an event of a type this SDK does not know to the
// handler's OnUnknown, once per eventId.
func (p *Processor) processUnknown(ctx context.Context, u *events.Unknown, source string, log *slog.Logger) (outcome, error) {
	unlock, err := p.lock(ctx, "event:"+u.ID())
	if err != nil {
		return "", err
	}
	defer unlock()
	if source != sourceRedrive {
		dup, err := p.isProcessed(ctx, u.ID())
		if err != nil || dup {
			return outcomeDuplicate, err
		}
	}
	r := u.Resource()
	log.LogAttrs(ctx, slog.LevelWarn, "marketplace: unknown event type; passing it to OnUnknown",
		slog.String("resource", r.Kind.String()), slog.String("resource_id", r.ID))
	if err := p.dispatch(ctx, &Change{Type: u.Type(), Trigger: u}, log); err != nil {
		return "", err
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		_, err := tx.MarkProcessed(ctx, u.ID(), p.cfg.now())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("marketplace: committing event %s: %w", u.ID(), err)
	}
	return outcomeProcessed, nil
}

func (p *Processor) isProcessed(ctx context.Context, eventID string) (bool, error) {
	var done bool
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		done, err = tx.IsProcessed(ctx, eventID)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("marketplace: checking event %s: %w", eventID, err)
	}
	return done, nil
}
