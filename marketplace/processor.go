package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Message is one Pub/Sub message as the processor needs it, whatever the
// transport (Receive, PushHandler, or your own).
type Message struct {
	ID              string            // the Pub/Sub message id
	Data            []byte            // the Marketplace notification (JSON)
	Attributes      map[string]string // Pub/Sub attributes (Marketplace sets none)
	PublishTime     time.Time         // when Pub/Sub accepted it
	DeliveryAttempt int               // 1 for the first delivery; 0 if unknown
}

// Processor turns Marketplace notifications into exactly-once, in-order
// effects: local state in a Store, approvals through the Procurement API
// and callbacks of an events.Handler. See the package documentation for the
// pipeline and its guarantees. It is safe for concurrent use.
type Processor struct {
	store   Store
	client  *procurement.Client
	handler events.Handler
	cfg     config
	logger  *slog.Logger
	locks   keyedMutex
	locker  KeyLocker
	viewer  Viewer // the store's read-only transactions, if it has them
	metrics metrics
	// slots bounds the messages in flight (WithConcurrency) whatever the
	// transport, so that ConnPool's sizing holds for PushHandler and
	// custom transports as it does for Receive.
	slots chan struct{}
	// unsettled holds the usage windows of entitlements with a message in
	// flight or awaiting redelivery (usage_confirm.go).
	unsettled *unsettled

	origin        Origin      // the Marketplace served, recorded in the store (origin.go)
	originChecked atomic.Bool // the store's Origin was found to be origin
}

// New returns a Processor that keeps its state in store, calls the
// Procurement API through client and reports changes to handler. Options
// set the approval policy (default AutoApprove), logger, metrics,
// concurrency, clock, retention and usage reporter.
//
// If store implements KeyLocker (stores shared by several processes do),
// the processor also takes its lock for every resource it works on; if it
// also implements ConnPool, New fails with an error wrapping ErrInvalid
// when the pool is too small for the concurrency (see ConnPool). If it
// implements Viewer (sqlitestore does), the processor reads local state in
// read-only transactions, which do not queue behind commits.
func New(store Store, client *procurement.Client, handler events.Handler, opts ...Option) (*Processor, error) {
	switch {
	case store == nil:
		return nil, fmt.Errorf("marketplace: New: nil Store: %w", ErrInvalid)
	case client == nil:
		return nil, fmt.Errorf("marketplace: New: nil procurement.Client: %w", ErrInvalid)
	case handler == nil:
		return nil, fmt.Errorf("marketplace: New: nil events.Handler: %w", ErrInvalid)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.policy == nil {
		return nil, fmt.Errorf("marketplace: New: nil Policy: %w", ErrInvalid)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	p := &Processor{store: store, client: client, handler: handler, cfg: cfg, logger: cfg.logger,
		slots: make(chan struct{}, cfg.concurrency), unsettled: newUnsettled(cfg.now),
		origin: originOf(client.ProviderID(), client.Service().BasePath)}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	p.logger = slog.New(newUniqueKeys(p.logger.Handler()))
	if l, ok := store.(KeyLocker); ok {
		p.locker = l
		if err := checkPool(store, cfg.concurrency); err != nil {
			return nil, err
		}
	}
	if v, ok := store.(Viewer); ok {
		p.viewer = v
	}
	mp := cfg.meterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	var err error
	if p.metrics, err = newMetrics(mp); err != nil {
		return nil, fmt.Errorf("marketplace: New: creating metrics: %w", err)
	}
	if cfg.meterProvider != nil {
		if err := p.registerGauges(mp); err != nil {
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
		fix += fmt.Sprintf(", or lower WithConcurrency to at most %d", n)
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
// one entry point of every transport: Receive and PushHandler call it, and
// so can your own transport.
//
// A message that cannot be decoded, or whose processing fails permanently
// (a callback error marked with events.Permanent, an invalid id, or any
// failure on the WithPoisonAfter-th attempt) is recorded with the reason in
// the Store (ListPoison) and acknowledged, so it never loops.
//
// At most WithConcurrency calls process a message at once; further calls
// wait for one of them to return, or for ctx to end, in which case they
// return ctx's error without processing the message.
func (p *Processor) HandleMessage(ctx context.Context, m Message) error {
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

	out, err := p.process(ctx, ev, log)
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

func (p *Processor) process(ctx context.Context, ev events.Event, log *slog.Logger) (outcome, error) {
	if u, ok := ev.(*events.Unknown); ok {
		return p.processUnknown(ctx, u, log)
	}
	r := ev.Resource()
	switch r.Kind {
	case events.ResourceEntitlement:
		done := p.unsettled.begin(r.ID)
		res, err := p.settleEntitlement(ctx, r.ID, entTrigger{source: sourceMessage, ev: ev}, log)
		done(err == nil || permanent(err))
		return res.outcome, err
	case events.ResourceAccount:
		res, err := p.settleAccount(ctx, r.ID, accTrigger{source: sourceMessage, ev: ev}, log)
		return res.outcome, err
	}
	return "", events.Permanent(fmt.Errorf("marketplace: event %s names no resource", ev.ID()))
}

// processUnknown hands an event of a type this SDK does not know to the
// handler's OnUnknown, once per eventId.
func (p *Processor) processUnknown(ctx context.Context, u *events.Unknown, log *slog.Logger) (outcome, error) {
	unlock, err := p.lock(ctx, "event:"+u.ID())
	if err != nil {
		return "", err
	}
	defer unlock()
	dup, err := p.isProcessed(ctx, u.ID())
	if err != nil || dup {
		return outcomeDuplicate, err
	}
	r := u.Resource()
	log.LogAttrs(ctx, slog.LevelWarn, "marketplace: unknown event type; passing it to OnUnknown",
		slog.String("resource", r.Kind.String()), slog.String("resource_id", r.ID))
	if err := p.dispatch(withInfo(ctx, &cbInfo{trigger: u}), u, log); err != nil {
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

// Prune deletes the processed event ids older than the retention period
// (WithRetention) and returns how many it deleted. Receive runs it hourly;
// call it yourself with other transports.
func (p *Processor) Prune(ctx context.Context) (int, error) {
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

// ---------------------------------------------------------------------------
// Entitlements

// entTrigger says why an entitlement is being settled.
type entTrigger struct {
	source string
	// ev is the message's event (source message): its eventId is
	// deduplicated and marked processed in the commit.
	ev events.Event
	// listed is the entitlement as just listed (reconcile): no GET.
	listed *procurement.Entitlement
	// operator is an operator's answer to the queued request.
	operator *Decision
}

// RuleAction is what the processor did about an entitlement waiting for
// the vendor (a new entitlement or a plan change).
type RuleAction string

// Rule actions.
const (
	RuleApproved RuleAction = "approved" // approved through the Procurement API
	RuleRejected RuleAction = "rejected" // rejected through the Procurement API
	RuleQueued   RuleAction = "queued"   // held in the approval queue for an operator
	RuleParked   RuleAction = "parked"   // waiting for the account's sign-up
)

type entResult struct {
	outcome   outcome
	action    RuleAction
	wasQueued bool
	added     bool // first seen
	updated   bool // a newer state was stored
	deleted   bool // removed locally
	final     *procurement.Entitlement
}

// settleEntitlement is the pipeline for one entitlement: lock, local state
// and deduplication, re-read, updateTime guard, Marketplace rule,
// callbacks for the transitions observed, commit. When the rule approves or
// rejects at Google, what was observed is committed first
// (commitObserved), then the change is made (carryOut), then its callbacks
// run and the final commit records the event id.
func (p *Processor) settleEntitlement(ctx context.Context, id string, tr entTrigger, log *slog.Logger) (entResult, error) {
	log = log.With(slog.String("entitlement_id", id))
	unlock, err := p.lock(ctx, entitlementKey(id))
	if err != nil {
		return entResult{}, err
	}
	defer unlock()

	// Local state and deduplication, in one short read-only transaction.
	// The key lock makes it current: every earlier commit about this
	// entitlement returned before the lock was released. It is not one
	// transaction with the commit below (it never was), which is why the
	// commit re-checks the event id (MarkProcessed) and, when it advances
	// the entitlement, the updateTime (AdvanceEntitlement).
	var (
		dup    bool
		prev   *Entitlement
		link   *Account
		queued = map[ApprovalKind]*ApprovalRequest{}
	)
	err = p.read(ctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			done, err := tx.IsProcessed(ctx, tr.ev.ID())
			if err != nil || done {
				dup = done
				return err
			}
		}
		e, err := tx.GetEntitlement(ctx, id)
		switch {
		case err == nil:
			prev = &e
		case !errors.Is(err, ErrNotFound):
			return err
		}
		// Requests are queued only while the entitlement waits for approval
		// (and removed by the commit that sees it move on), so other states
		// need not look, unless an operator asks.
		if tr.operator != nil || (prev != nil && (prev.State == string(procurement.EntitlementActivationRequested) ||
			prev.State == string(procurement.EntitlementPendingPlanChangeApproval))) {
			for _, k := range [...]ApprovalKind{ApprovalEntitlement, ApprovalPlanChange} {
				r, err := tx.GetApproval(ctx, id, k)
				switch {
				case err == nil:
					queued[k] = &r
				case !errors.Is(err, ErrNotFound):
					return err
				}
			}
		}
		if prev != nil {
			link, err = getAccount(ctx, tx, prev.AccountID)
			return err
		}
		return nil
	})
	if err != nil {
		return entResult{}, fmt.Errorf("marketplace: reading local state of entitlement %s: %w", id, err)
	}
	if dup {
		return entResult{outcome: outcomeDuplicate}, nil
	}
	res := entResult{wasQueued: queued[ApprovalEntitlement] != nil || queued[ApprovalPlanChange] != nil}
	if tr.operator != nil && !res.wasQueued {
		return res, nil
	}

	// The message is a hint: act on the resource as it is now. So is a
	// listed snapshot (Reconcile): a message settled since its page was
	// fetched may have stored a newer state, which it must not undo.
	cur := tr.listed
	if cur == nil || (prev != nil && olderThanStored(cur.UpdateTime, prev.UpdateTime)) {
		if cur, err = p.getEntitlement(ctx, id); err != nil {
			return res, err
		}
	}
	if cur != nil && prev != nil && olderThanStored(cur.UpdateTime, prev.UpdateTime) {
		// Still older than what is stored: nothing in it is new, and
		// acting on it would repeat or undo what is done.
		log.LogAttrs(ctx, slog.LevelDebug, "marketplace: entitlement read is older than the stored state; ignored",
			slog.Time("read_update_time", cur.UpdateTime), slog.Time("stored_update_time", prev.UpdateTime))
		return entResult{outcome: outcomeStale, wasQueued: res.wasQueued, final: cur}, nil
	}
	if cur == nil && prev == nil {
		// The API answers 404 and nothing is known here: an entitlement
		// removed before this message came, another provider's, or a
		// made-up id. Nothing to do, but a message acknowledged without
		// effect is said and counted, never silent.
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: entitlement not found at the Procurement API nor locally; acknowledged without effect")
		return entResult{outcome: outcomeNotFound, wasQueued: res.wasQueued}, nil
	}
	if cur != nil {
		log = log.With(slog.String("account_id", cur.AccountID))
		// The read above looked up the stored entitlement's account
		// already: only an entitlement new here (or, in theory, moved to
		// another account) needs another read.
		if prev == nil || prev.AccountID != cur.AccountID {
			if link, err = p.readAccountLink(ctx, cur.AccountID); err != nil {
				return res, err
			}
		}
	}
	newer := (prev == nil) != (cur == nil) || (prev != nil && cur != nil && cur.UpdateTime.After(prev.UpdateTime))

	// The Marketplace rule for the state the entitlement is in.
	rule := ruleOutcome{after: cur}
	if cur != nil {
		if rule, err = p.applyRule(ctx, cur, prev, queued, tr, log); err != nil {
			return res, err
		}
	}
	info := cbInfo{prev: prev, link: link, acct: rule.account, trigger: tr.ev}
	// base is the stored state the remaining callbacks and the commit start
	// from: prev, or the re-read state once committed below.
	base := prev
	if rule.pending != nil {
		// Commit before acting at Google (see commitObserved).
		if base, err = p.commitObserved(ctx, id, prev, cur, newer, queued, info, tr, log); err != nil {
			return res, err
		}
		newer, info.prev = false, base
		if rule, err = p.carryOut(ctx, cur, rule); err != nil {
			return res, err
		}
	}
	res.action = rule.action
	after := rule.after

	// Callbacks, driven by the transitions observed: from the stored state
	// to the state just read (only if it is newer), then from that to the
	// state our own approval produced.
	var steps []step
	if newer {
		steps = transitions(localView(base), remoteView(cur), cur)
	}
	if rule.acted {
		steps = append(steps, transitions(remoteView(cur), remoteView(after), after)...)
	}
	steps = append(steps, p.informational(tr.ev, after)...)

	stale := staleApprovals(queued, after)
	changed := newer || rule.acted || rule.action != "" || len(stale) > 0 ||
		(base != nil && after != nil && base.Parked != rule.park)
	// Usage is registered before the callbacks, so that OnEntitlementActive
	// can already record usage. Register is an idempotent upsert: if a
	// callback then fails, the redelivery registers again harmlessly.
	if p.cfg.usage != nil && changed {
		if err := p.registerUsage(ctx, base, after); err != nil {
			return res, err
		}
	}
	if err := p.runCallbacks(ctx, id, steps, info, tr, log); err != nil {
		return res, err
	}

	if !changed && len(steps) == 0 {
		// Nothing newer and nothing to do: no write. The event id is not
		// recorded either; a redelivery is as harmless as this delivery.
		return entResult{outcome: outcomeStale, wasQueued: res.wasQueued, final: after}, nil
	}

	// Commit: the event id, the new local state and the queue, together.
	now := p.cfg.now()
	var local *Entitlement
	if after != nil {
		l := toLocal(after, base, rule.park, now)
		local = &l
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			first, err := tx.MarkProcessed(ctx, tr.ev.ID(), now)
			if err != nil {
				return err
			}
			if !first {
				log.LogAttrs(ctx, slog.LevelWarn, "marketplace: event processed concurrently elsewhere; use a Store that implements KeyLocker when several processes share it")
			}
		}
		if !changed {
			return nil
		}
		return writeEntitlement(ctx, tx, id, base, local, rule.hold, stale)
	})
	if err != nil {
		return res, fmt.Errorf("marketplace: committing entitlement %s: %w", id, err)
	}
	res.final = after
	res.added = prev == nil && after != nil
	res.updated = prev != nil && after != nil && changed
	res.deleted = prev != nil && after == nil
	res.outcome = outcomeProcessed
	if rule.action != "" {
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: entitlement "+string(rule.action), slog.String("source", tr.source))
	}
	return res, nil
}

// commitObserved is the first of the two commits of a settlement that
// approves or rejects something at Google. It runs the callbacks of the
// transitions observed so far (stored → re-read) and commits the re-read
// state, without the triggering eventId. If the process dies after
// Google's change and before the final commit, the redelivery then starts
// from the re-read state and fires only the callbacks of what followed;
// without this commit it would start from the older stored state, which
// Google's change has made unobservable (OnEntitlementCreationRequested or
// OnEntitlementPlanChangeRequested would never fire). It returns the local
// state the rest of the settlement starts from, and removes from queued
// the requests it dequeued.
func (p *Processor) commitObserved(ctx context.Context, id string, prev *Entitlement, cur *procurement.Entitlement, newer bool,
	queued map[ApprovalKind]*ApprovalRequest, info cbInfo, tr entTrigger, log *slog.Logger) (*Entitlement, error) {
	var steps []step
	if newer {
		steps = transitions(localView(prev), remoteView(cur), cur)
	}
	// Until Google approves it, an entitlement released from parking still
	// waits: should the process die first, sign-up and Reconcile still find
	// it parked.
	local := toLocal(cur, prev, prev != nil && prev.Parked, p.cfg.now())
	stale := staleApprovals(queued, cur)
	if len(steps) == 0 && len(stale) == 0 && prev != nil && sameLocal(local, *prev) {
		return prev, nil // nothing observed that is not stored already
	}
	// Only these callbacks need the registration now; the final commit's
	// registration covers the state after Google's change.
	if p.cfg.usage != nil && len(steps) > 0 {
		if err := p.registerUsage(ctx, prev, cur); err != nil {
			return nil, err
		}
	}
	if err := p.runCallbacks(ctx, id, steps, info, tr, log); err != nil {
		return nil, err
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err := p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		return writeEntitlement(ctx, tx, id, prev, &local, nil, stale)
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: committing entitlement %s before changing it at Google: %w", id, err)
	}
	for _, k := range stale {
		delete(queued, k)
	}
	return &local, nil
}

// runCallbacks runs the callbacks of steps, in order.
func (p *Processor) runCallbacks(ctx context.Context, id string, steps []step, info cbInfo, tr entTrigger, log *slog.Logger) error {
	for _, s := range steps {
		info.ent = s.ent
		ev := p.entitlementEvent(s.kind, tr.ev, id, s.ent, info.prev)
		log.LogAttrs(ctx, slog.LevelDebug, "marketplace: entitlement callback",
			slog.String("callback", string(s.kind)), slog.String("source", tr.source))
		if err := p.dispatch(withInfo(ctx, &info), ev, log); err != nil {
			return fmt.Errorf("marketplace: %s callback for entitlement %s: %w", s.kind, id, err)
		}
	}
	return nil
}

// writeEntitlement stores local, the entitlement as re-read (nil: it no
// longer exists at Google), over prev, the stored state, under the
// updateTime guard; it queues hold and removes the stale requests.
func writeEntitlement(ctx context.Context, tx Tx, id string, prev, local *Entitlement, hold *ApprovalRequest, stale []ApprovalKind) error {
	for _, k := range stale {
		if err := tx.DeleteApproval(ctx, id, k); err != nil {
			return err
		}
	}
	if local == nil {
		if prev == nil {
			return nil
		}
		return tx.DeleteEntitlement(ctx, id)
	}
	var err error
	if prev == nil || local.UpdateTime.After(prev.UpdateTime) {
		_, err = tx.AdvanceEntitlement(ctx, *local)
	} else if !sameLocal(*local, *prev) {
		err = tx.PutEntitlement(ctx, *local)
	}
	if err != nil {
		return err
	}
	if hold != nil {
		if _, err := tx.EnqueueApproval(ctx, *hold); err != nil {
			return err
		}
	}
	return nil
}

// staleApprovals lists the queued requests that e (nil: deleted) no longer
// waits for.
func staleApprovals(queued map[ApprovalKind]*ApprovalRequest, e *procurement.Entitlement) []ApprovalKind {
	var out []ApprovalKind
	if queued[ApprovalEntitlement] != nil && (e == nil || !awaitingApproval(e)) {
		out = append(out, ApprovalEntitlement)
	}
	// A plan-change request is for one plan: if the customer has since
	// asked for another, it is not that request that waits any more.
	if q := queued[ApprovalPlanChange]; q != nil && (e == nil || e.State != procurement.EntitlementPendingPlanChangeApproval || e.NewPendingPlan != q.Plan) {
		out = append(out, ApprovalPlanChange)
	}
	return out
}

// olderThanStored reports whether an updateTime read from Google is older
// than the stored one. A store may keep times to the microsecond, and
// PostgreSQL rounds (not truncates) a time sent as text, so the stored copy
// of the very same updateTime can be up to half a microsecond later: only a
// difference beyond a microsecond counts.
func olderThanStored(read, stored time.Time) bool {
	return read.Before(stored.Add(-time.Microsecond))
}

// getEntitlement re-reads an entitlement; nil means it no longer exists.
func (p *Processor) getEntitlement(ctx context.Context, id string) (*procurement.Entitlement, error) {
	e, err := p.client.GetEntitlement(ctx, id)
	switch {
	case errors.Is(err, procurement.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("marketplace: re-reading entitlement %s: %w", id, err)
	}
	return &e, nil
}

func getAccount(ctx context.Context, tx Tx, id string) (*Account, error) {
	if id == "" {
		return nil, nil
	}
	a, err := tx.GetAccount(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &a, nil
}

func (p *Processor) readAccountLink(ctx context.Context, accountID string) (*Account, error) {
	var a *Account
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		a, err = getAccount(ctx, tx, accountID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: reading local account %s: %w", accountID, err)
	}
	return a, nil
}

// ruleOutcome is the result of the Marketplace rule.
type ruleOutcome struct {
	after   *procurement.Entitlement // the state after the rule (cur if it did not act)
	acted   bool                     // the rule changed the entitlement at Google
	action  RuleAction
	park    bool             // the entitlement waits for sign-up
	hold    *ApprovalRequest // queue this request
	account *procurement.Account
	// pending is an approval or rejection decided but not yet made at
	// Google: carryOut makes it, once the settlement has committed what it
	// observed (commitObserved).
	pending *Decision
	kind    ApprovalKind // what pending is about
}

func awaitingApproval(e *procurement.Entitlement) bool {
	return e.State == procurement.EntitlementActivationRequested && e.NewOfferStartTime.IsZero()
}

// applyRule decides about what waits for the vendor: it parks or queues at
// once, and leaves an approval or rejection pending for carryOut.
// Everything else needs no call: local state simply follows the re-read
// resource.
func (p *Processor) applyRule(ctx context.Context, cur *procurement.Entitlement, prev *Entitlement,
	queued map[ApprovalKind]*ApprovalRequest, tr entTrigger, log *slog.Logger) (ruleOutcome, error) {
	out := ruleOutcome{after: cur}
	switch {
	case awaitingApproval(cur):
		if tr.operator != nil {
			if queued[ApprovalEntitlement] == nil {
				return out, nil
			}
			return p.decideEntitlement(ctx, cur, *tr.operator, out, log)
		}
		if queued[ApprovalEntitlement] != nil {
			return out, nil // an operator decides
		}
		acct, err := p.client.GetAccount(ctx, cur.AccountID, &procurement.GetAccountParams{View: procurement.AccountViewBasic})
		if err != nil {
			return out, fmt.Errorf("marketplace: reading account %s of entitlement %s: %w", cur.AccountID, cur.ID, err)
		}
		out.account = &acct
		if !acct.SignupApproved() {
			out.park = true
			if prev == nil || !prev.Parked {
				out.action = RuleParked
			}
			return out, nil
		}
		d, err := p.decide(ctx, PolicyRequest{Kind: ApprovalEntitlement, Entitlement: *cur, Account: acct})
		if err != nil {
			return out, err
		}
		return p.decideEntitlement(ctx, cur, d, out, log)

	case cur.State == procurement.EntitlementPendingPlanChangeApproval:
		q := queued[ApprovalPlanChange]
		if tr.operator != nil {
			if q == nil || q.Plan != cur.NewPendingPlan {
				return out, nil
			}
			return p.decidePlanChange(ctx, cur, *tr.operator, out, log)
		}
		if q != nil && q.Plan == cur.NewPendingPlan {
			return out, nil // an operator decides
		}
		d, err := p.decide(ctx, PolicyRequest{Kind: ApprovalPlanChange, Entitlement: *cur})
		if err != nil {
			return out, err
		}
		return p.decidePlanChange(ctx, cur, d, out, log)
	}
	return out, nil
}

// decide asks the policy, turning a panic into an error.
func (p *Processor) decide(ctx context.Context, r PolicyRequest) (d Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	d, err = p.cfg.policy.Decide(ctx, r)
	if err != nil {
		return d, fmt.Errorf("marketplace: approval policy for entitlement %s: %w", r.Entitlement.ID, err)
	}
	return d, d.check()
}

// decideEntitlement applies d to a new entitlement: a hold is carried out
// at once (it changes nothing at Google but the customer's message), an
// approval or rejection is left pending for carryOut.
func (p *Processor) decideEntitlement(ctx context.Context, cur *procurement.Entitlement, d Decision, out ruleOutcome, log *slog.Logger) (ruleOutcome, error) {
	switch d.Action {
	case ActionApprove, ActionReject:
		out.pending, out.kind = &d, ApprovalEntitlement
	case ActionHold:
		out.after, out.action = p.setMessage(ctx, cur, d.MessageToUser, log), RuleQueued
		out.acted = out.after != cur
		out.hold = &ApprovalRequest{EntitlementID: cur.ID, Kind: ApprovalEntitlement, AccountID: cur.AccountID,
			Plan: cur.Plan, RequestedAt: p.cfg.now()}
	}
	return out, nil
}

// decidePlanChange is decideEntitlement for a plan change.
func (p *Processor) decidePlanChange(ctx context.Context, cur *procurement.Entitlement, d Decision, out ruleOutcome, log *slog.Logger) (ruleOutcome, error) {
	switch d.Action {
	case ActionApprove, ActionReject:
		out.pending, out.kind = &d, ApprovalPlanChange
	case ActionHold:
		out.after, out.action = p.setMessage(ctx, cur, d.MessageToUser, log), RuleQueued
		out.acted = out.after != cur
		out.hold = &ApprovalRequest{EntitlementID: cur.ID, Kind: ApprovalPlanChange, AccountID: cur.AccountID,
			Plan: cur.NewPendingPlan, RequestedAt: p.cfg.now()}
	}
	return out, nil
}

// carryOut makes the approval or rejection the rule left pending.
func (p *Processor) carryOut(ctx context.Context, cur *procurement.Entitlement, out ruleOutcome) (ruleOutcome, error) {
	d := *out.pending
	out.pending = nil
	switch {
	case out.kind == ApprovalEntitlement && d.Action == ActionApprove:
		r, err := p.client.ApproveEntitlement(ctx, cur.ID, nil)
		if errors.Is(err, procurement.ErrSignupNotApproved) {
			// Sign-up was withdrawn since we looked: wait for it again.
			out.park, out.action = true, RuleParked
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("marketplace: approving entitlement %s: %w", cur.ID, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, RuleApproved
	case out.kind == ApprovalEntitlement:
		if _, err := p.client.RejectEntitlement(ctx, cur.ID, &procurement.RejectEntitlementParams{Reason: d.Reason}); err != nil {
			return out, fmt.Errorf("marketplace: rejecting entitlement %s: %w", cur.ID, err)
		}
		after, err := p.getEntitlement(ctx, cur.ID) // rejected entitlements are removed
		if err != nil {
			return out, err
		}
		out.after, out.acted, out.action = after, true, RuleRejected
	case d.Action == ActionApprove:
		r, err := p.client.ApprovePlanChange(ctx, cur.ID, &procurement.ApprovePlanChangeParams{ExpectedPlan: cur.NewPendingPlan})
		if err != nil {
			return out, fmt.Errorf("marketplace: approving plan change of entitlement %s to %q: %w", cur.ID, cur.NewPendingPlan, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, RuleApproved
	default:
		r, err := p.client.RejectPlanChange(ctx, cur.ID, &procurement.RejectPlanChangeParams{ExpectedPlan: cur.NewPendingPlan, Reason: d.Reason})
		if err != nil {
			return out, fmt.Errorf("marketplace: rejecting plan change of entitlement %s to %q: %w", cur.ID, cur.NewPendingPlan, err)
		}
		out.after, out.acted, out.action = &r.Entitlement, true, RuleRejected
	}
	return out, nil
}

// setMessage shows msg to the customer. It is a courtesy: a failure is
// logged, not fatal, so the request is queued all the same.
func (p *Processor) setMessage(ctx context.Context, cur *procurement.Entitlement, msg string, log *slog.Logger) *procurement.Entitlement {
	if msg == "" || msg == cur.MessageToUser {
		return cur
	}
	e, err := p.client.SetMessageToUser(ctx, cur.ID, msg)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "marketplace: cannot set the message to the customer", slog.String("error", err.Error()))
		return cur
	}
	return &e
}

func (p *Processor) registerUsage(ctx context.Context, prev *Entitlement, after *procurement.Entitlement) error {
	// Only an entitlement that is or was usable is registered: one still
	// waiting for approval (parked, queued, scheduled) was never
	// provisioned, so no usage may be billed for it, and one that ends
	// without ever being usable must not get hourly zero reports either.
	wasUsable := prev != nil && (provisioned(procurement.EntitlementState(prev.State)) ||
		procurement.EntitlementState(prev.State) == procurement.EntitlementCancelled)
	var c usageConsumer
	switch {
	case after != nil && after.UsageReportingID != "":
		if !provisioned(after.State) && !(after.State == procurement.EntitlementCancelled && wasUsable) {
			return nil
		}
		c = usageConsumer{EntitlementID: after.ID, UsageReportingID: after.UsageReportingID, Start: after.CreateTime}
		switch after.State {
		case procurement.EntitlementPendingCancellation:
			c.End = after.OfferEndTime
		case procurement.EntitlementCancelled:
			c.End = after.UpdateTime
			if prev != nil && !prev.CancelTime.IsZero() {
				c.End = prev.CancelTime
			}
		}
	case after == nil && prev != nil && prev.UsageReportingID != "" && wasUsable:
		c = usageConsumer{EntitlementID: prev.ID, UsageReportingID: prev.UsageReportingID, End: prev.CancelTime}
		if c.End.IsZero() {
			c.End = p.cfg.now()
		}
	default:
		return nil
	}
	if err := p.cfg.usage.register(ctx, c); err != nil {
		return fmt.Errorf("marketplace: registering entitlement %s with the usage reporter: %w", c.EntitlementID, err)
	}
	return nil
}

// toLocal is the local record of an entitlement as just read.
func toLocal(e *procurement.Entitlement, prev *Entitlement, park bool, now time.Time) Entitlement {
	product := e.ProductExternalName
	if product == "" {
		product = e.Product
	}
	out := Entitlement{
		ID: e.ID, AccountID: e.AccountID, Product: product, Plan: e.Plan, PendingPlan: e.NewPendingPlan,
		Offer: e.Offer, State: string(e.State), UsageReportingID: e.UsageReportingID, UpdateTime: e.UpdateTime,
	}
	if park && e.State == procurement.EntitlementActivationRequested {
		out.Parked, out.ParkedAt = true, now
		if prev != nil && prev.Parked {
			out.ParkedAt = prev.ParkedAt
		}
	}
	if e.State == procurement.EntitlementCancelled {
		out.CancelTime = e.UpdateTime
		if prev != nil && !prev.CancelTime.IsZero() {
			out.CancelTime = prev.CancelTime
		}
	}
	return out
}

func sameLocal(a, b Entitlement) bool {
	return a.ID == b.ID && a.AccountID == b.AccountID && a.Product == b.Product && a.Plan == b.Plan &&
		a.PendingPlan == b.PendingPlan && a.Offer == b.Offer && a.State == b.State && a.UsageReportingID == b.UsageReportingID &&
		a.UpdateTime.Equal(b.UpdateTime) && a.Parked == b.Parked && a.ParkedAt.Equal(b.ParkedAt) &&
		a.CancelTime.Equal(b.CancelTime)
}

// ---------------------------------------------------------------------------
// Transitions

// view is what the transition rules compare: the stored or the re-read state.
type view struct {
	exists      bool
	state       procurement.EntitlementState
	plan        string
	pendingPlan string
	offer       string // "" when unknown (stored by an older version)
	scheduled   bool   // approved, waiting for newOfferStartTime (not known for stored state)
}

func localView(e *Entitlement) view {
	if e == nil {
		return view{}
	}
	return view{exists: true, state: procurement.EntitlementState(e.State), plan: e.Plan, pendingPlan: e.PendingPlan, offer: e.Offer}
}

func remoteView(e *procurement.Entitlement) view {
	if e == nil {
		return view{}
	}
	return view{exists: true, state: e.State, plan: e.Plan, pendingPlan: e.NewPendingPlan, offer: e.Offer,
		scheduled: e.State == procurement.EntitlementActivationRequested && !e.NewOfferStartTime.IsZero()}
}

// provisioned reports whether the customer may use the product in state s.
func provisioned(s procurement.EntitlementState) bool {
	switch s {
	case procurement.EntitlementActive, procurement.EntitlementPendingPlanChange,
		procurement.EntitlementPendingPlanChangeApproval, procurement.EntitlementPendingCancellation:
		return true
	}
	return false
}

// step is one callback: its kind and the resource it reports (nil once
// the entitlement is gone).
type step struct {
	kind events.Type
	ent  *procurement.Entitlement
}

// transitions lists the callbacks that take the app from state a to state
// b, in the order the changes happen. It is the single place that decides
// which callback fires for which change (the table in the package doc).
func transitions(a, b view, ent *procurement.Entitlement) []step {
	var out []step
	add := func(k events.Type) { out = append(out, step{k, ent}) }
	switch {
	case !b.exists:
		if a.exists {
			if a.state != procurement.EntitlementCancelled {
				add(events.TypeEntitlementCancelled)
			}
			add(events.TypeEntitlementDeleted)
		}
	case b.state == procurement.EntitlementActivationRequested:
		switch {
		case !a.exists && b.scheduled:
			add(events.TypeEntitlementOfferAccepted)
		case !a.exists:
			add(events.TypeEntitlementCreationRequested)
		case a.state == procurement.EntitlementActivationRequested && b.scheduled && !a.scheduled:
			add(events.TypeEntitlementOfferAccepted)
		}
	case b.state == procurement.EntitlementCancelled:
		if a.exists && a.state != procurement.EntitlementCancelled {
			add(events.TypeEntitlementCancelled)
		}
	case provisioned(b.state):
		wasOn := a.exists && provisioned(a.state)
		if !wasOn {
			add(events.TypeEntitlementActive)
		}
		changePending := func(s procurement.EntitlementState) bool {
			return s == procurement.EntitlementPendingPlanChangeApproval || s == procurement.EntitlementPendingPlanChange
		}
		// A replacement offer may keep the plan: the change is then seen
		// in the offer, when both sides know theirs and a change was
		// pending (an offer may also end, and the entitlement go on at
		// list price under another offer name: that is no plan change).
		changed := a.plan != b.plan ||
			(changePending(a.state) && a.offer != "" && b.offer != "" && a.offer != b.offer)
		if wasOn && changed {
			add(events.TypeEntitlementPlanChanged)
		}
		if wasOn && changePending(a.state) && !changePending(b.state) && !changed {
			add(events.TypeEntitlementPlanChangeCancelled)
		}
		if wasOn && a.state == procurement.EntitlementPendingCancellation && b.state != procurement.EntitlementPendingCancellation {
			add(events.TypeEntitlementCancellationReverted)
		}
		if b.state == procurement.EntitlementPendingPlanChangeApproval &&
			(a.state != procurement.EntitlementPendingPlanChangeApproval || a.pendingPlan != b.pendingPlan) {
			add(events.TypeEntitlementPlanChangeRequested)
		}
		if b.state == procurement.EntitlementPendingCancellation && a.state != procurement.EntitlementPendingCancellation {
			add(events.TypeEntitlementPendingCancellation)
		}
	}
	return out
}

// informational lists the callbacks of events that change nothing the
// processor stores (a renewal, the end of an offer, a cancellation in
// progress): they fire once per eventId, while they still make sense.
func (p *Processor) informational(ev events.Event, after *procurement.Entitlement) []step {
	if ev == nil || after == nil {
		return nil
	}
	switch ev.Type() {
	case events.TypeEntitlementRenewed, events.TypeEntitlementOfferEnded:
		if provisioned(after.State) {
			return []step{{ev.Type(), after}}
		}
	case events.TypeEntitlementCancelling:
		if after.State != procurement.EntitlementCancelled {
			return []step{{ev.Type(), after}}
		}
	}
	return nil
}

// entitlementEvent is the event handed to the callback of kind k: the
// message's own event when it is of that type, otherwise one built from
// the re-read resource (its EventID is the message's, or "" when no message
// triggered the change).
func (p *Processor) entitlementEvent(k events.Type, trigger events.Event, id string, e *procurement.Entitlement, prev *Entitlement) events.Event {
	if trigger != nil && trigger.Type() == k {
		return trigger
	}
	h := events.Header{EventType: k, ProviderID: p.client.ProviderID()}
	if trigger != nil {
		h.EventID = trigger.ID()
	}
	ent := events.Entitlement{ID: id}
	switch {
	case e != nil:
		ent = events.Entitlement{
			ID: e.ID, UpdateTime: e.UpdateTime, NewPlan: e.Plan, NewOffer: e.Offer,
			NewOfferDuration: e.OfferDuration, NewOfferStartTime: e.NewOfferStartTime,
			NewOfferEndTime: e.OfferEndTime, OrderID: e.OrderID, EntitlementBenefitIDs: e.EntitlementBenefitIDs,
		}
		if k == events.TypeEntitlementPlanChangeRequested {
			ent.NewPlan, ent.NewOffer = e.NewPendingPlan, e.NewPendingOffer
			ent.NewOfferDuration, ent.NewOfferEndTime = e.NewPendingOfferDuration, e.NewOfferEndTime
		}
	case prev != nil:
		ent.UpdateTime, ent.NewPlan = prev.UpdateTime, prev.Plan
	}
	switch k {
	case events.TypeEntitlementCreationRequested:
		return &events.EntitlementCreationRequested{Header: h, Entitlement: ent}
	case events.TypeEntitlementActive:
		return &events.EntitlementActive{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChangeRequested:
		return &events.EntitlementPlanChangeRequested{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChanged:
		return &events.EntitlementPlanChanged{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChangeCancelled:
		return &events.EntitlementPlanChangeCancelled{Header: h, Entitlement: ent}
	case events.TypeEntitlementPendingCancellation:
		return &events.EntitlementPendingCancellation{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancellationReverted:
		return &events.EntitlementCancellationReverted{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancelling:
		return &events.EntitlementCancelling{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancelled:
		return &events.EntitlementCancelled{Header: h, Entitlement: ent}
	case events.TypeEntitlementDeleted:
		return &events.EntitlementDeleted{Header: h, Entitlement: ent}
	case events.TypeEntitlementOfferAccepted:
		return &events.EntitlementOfferAccepted{Header: h, Entitlement: ent}
	case events.TypeEntitlementRenewed:
		return &events.EntitlementRenewed{Header: h, Entitlement: ent}
	case events.TypeEntitlementOfferEnded:
		return &events.EntitlementOfferEnded{Header: h, Entitlement: ent}
	}
	panic("marketplace: no entitlement event for " + string(k)) // transitions and informational produce only the above
}

// dispatch runs the handler's method for ev, turning a panic into an error.
func (p *Processor) dispatch(ctx context.Context, ev events.Event, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			log.LogAttrs(ctx, slog.LevelError, "marketplace: callback panicked; message not acknowledged",
				slog.Any("panic", v), slog.String("stack", string(pe.Stack)))
			err = pe
		}
	}()
	return events.Dispatch(ctx, p.handler, ev)
}

// ---------------------------------------------------------------------------
// Accounts

type accTrigger struct {
	source string
	ev     events.Event
	listed *procurement.Account // reconcile: the account as just listed
}

type accResult struct {
	outcome outcome
	added   bool
	updated bool
	purged  bool
	deleted []string // entitlements removed with a purged account
}

// settleAccount is the pipeline for one account. An account that no
// longer exists at Google is purged: its entitlements are settled (turn-off
// callbacks), the handler's OnAccountDeleted runs, and its local state is
// removed, exactly once.
func (p *Processor) settleAccount(ctx context.Context, id string, tr accTrigger, log *slog.Logger) (accResult, error) {
	log = log.With(slog.String("account_id", id))
	unlock, err := p.lock(ctx, accountKey(id))
	if err != nil {
		return accResult{}, err
	}
	defer unlock()

	var (
		dup  bool
		prev *Account
		ents []Entitlement
	)
	err = p.read(ctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			done, err := tx.IsProcessed(ctx, tr.ev.ID())
			if err != nil || done {
				dup = done
				return err
			}
		}
		var err error
		if prev, err = getAccount(ctx, tx, id); err != nil {
			return err
		}
		ents, err = tx.ListEntitlements(ctx, EntitlementQuery{AccountID: id})
		return err
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: reading local state of account %s: %w", id, err)
	}
	if dup {
		return accResult{outcome: outcomeDuplicate}, nil
	}

	// A listed snapshot (Reconcile) older than what is stored, or that
	// would take back a sign-up stored as approved, may predate a message
	// settled since its page was fetched: read the account again.
	cur := tr.listed
	if cur == nil || (prev != nil && (olderThanStored(cur.UpdateTime, prev.UpdateTime) || (prev.SignupApproved && !cur.SignupApproved()))) {
		cur = nil
		a, err := p.client.GetAccount(ctx, id, &procurement.GetAccountParams{View: procurement.AccountViewBasic})
		switch {
		case err == nil:
			cur = &a
		case !errors.Is(err, procurement.ErrNotFound):
			return accResult{}, fmt.Errorf("marketplace: re-reading account %s: %w", id, err)
		}
	}
	if cur == nil {
		return p.purgeAccount(ctx, id, prev, ents, tr, log)
	}
	if _, ok := tr.ev.(*events.AccountDeleted); ok {
		// Deleting customer data on a notification the API contradicts
		// would be irreversible: wait for the API to agree.
		return accResult{}, fmt.Errorf("marketplace: ACCOUNT_DELETED for account %s, but the Procurement API still has it; will retry", id)
	}

	newer := prev == nil || cur.UpdateTime.After(prev.UpdateTime) || prev.SignupApproved != cur.SignupApproved()
	if !newer {
		p.releaseParked(ctx, cur, ents, tr, log)
		return accResult{outcome: outcomeStale}, nil
	}
	if prev == nil {
		if err := p.accountActive(ctx, cur, nil, tr.ev, log); err != nil {
			return accResult{}, err
		}
	}
	now := p.cfg.now()
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err = p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			if _, err := tx.MarkProcessed(ctx, tr.ev.ID(), now); err != nil {
				return err
			}
		}
		return tx.PutAccount(ctx, mergeAccount(prev, cur, now))
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: committing account %s: %w", id, err)
	}
	p.releaseParked(ctx, cur, ents, tr, log)
	return accResult{outcome: outcomeProcessed, added: prev == nil, updated: prev != nil}, nil
}

// releaseParked settles the parked entitlements of an account found
// approved at Google (sign-up completed by another replica, or outside this
// SDK). Failures are logged: Reconcile or the next sign-up retries them.
func (p *Processor) releaseParked(ctx context.Context, cur *procurement.Account, ents []Entitlement, tr accTrigger, log *slog.Logger) {
	if !cur.SignupApproved() {
		return
	}
	for _, e := range ents {
		if !e.Parked {
			continue
		}
		if _, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: tr.source}, log); err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "marketplace: cannot settle parked entitlement; Reconcile or the next sign-up will",
				slog.String("entitlement_id", e.ID), slog.String("error", err.Error()))
		}
	}
}

// accountActive fires OnAccountActive, the callback for an account seen
// for the first time, whichever way it was seen.
func (p *Processor) accountActive(ctx context.Context, cur *procurement.Account, link *Account, trigger events.Event, log *slog.Logger) error {
	ev, ok := trigger.(*events.AccountActive)
	if !ok {
		h := events.Header{EventType: events.TypeAccountActive, ProviderID: p.client.ProviderID()}
		if trigger != nil {
			h.EventID = trigger.ID()
		}
		ev = &events.AccountActive{Header: h, Account: events.Account{ID: cur.ID, UpdateTime: cur.UpdateTime}}
	}
	if err := p.dispatch(withInfo(ctx, &cbInfo{acct: cur, link: link, trigger: trigger}), ev, log); err != nil {
		return fmt.Errorf("marketplace: %s callback for account %s: %w", events.TypeAccountActive, cur.ID, err)
	}
	return nil
}

func mergeAccount(prev *Account, cur *procurement.Account, now time.Time) Account {
	a := Account{ID: cur.ID, SignupApproved: cur.SignupApproved(), UpdateTime: cur.UpdateTime, CreatedAt: now}
	if prev != nil {
		a.VendorUserID, a.UserIdentity, a.CreatedAt = prev.VendorUserID, prev.UserIdentity, prev.CreatedAt
		if prev.UpdateTime.After(a.UpdateTime) {
			a.UpdateTime = prev.UpdateTime
		}
	}
	return a
}

func (p *Processor) purgeAccount(ctx context.Context, id string, prev *Account, ents []Entitlement, tr accTrigger, log *slog.Logger) (accResult, error) {
	if prev == nil && len(ents) == 0 {
		// Never linked here, or purged already: nothing of the customer's
		// is known to this integration. Said and counted, never silent.
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: account not found at the Procurement API nor locally; acknowledged without effect")
		return accResult{outcome: outcomeNotFound}, nil
	}
	// The entitlements first, so that the app turns the service off before
	// it deletes the customer's data.
	var deleted []string
	for _, e := range ents {
		r, err := p.settleEntitlement(ctx, e.ID, entTrigger{source: sourceAccountDeleted}, log)
		if err != nil {
			return accResult{}, err
		}
		if r.deleted {
			deleted = append(deleted, e.ID)
		}
	}
	ev, ok := tr.ev.(*events.AccountDeleted)
	if !ok {
		h := events.Header{EventType: events.TypeAccountDeleted, ProviderID: p.client.ProviderID()}
		if tr.ev != nil {
			h.EventID = tr.ev.ID()
		}
		ev = &events.AccountDeleted{Header: h, Account: events.Account{ID: id}}
	}
	if err := p.dispatch(withInfo(ctx, &cbInfo{link: prev, trigger: tr.ev}), ev, log); err != nil {
		return accResult{}, fmt.Errorf("marketplace: %s callback for account %s: %w", events.TypeAccountDeleted, id, err)
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err := p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			if _, err := tx.MarkProcessed(ctx, tr.ev.ID(), p.cfg.now()); err != nil {
				return err
			}
		}
		left, err := tx.ListEntitlements(ctx, EntitlementQuery{AccountID: id})
		if err != nil {
			return err
		}
		for _, e := range left {
			for _, k := range [...]ApprovalKind{ApprovalEntitlement, ApprovalPlanChange} {
				if err := tx.DeleteApproval(ctx, e.ID, k); err != nil {
					return err
				}
			}
			if err := tx.DeleteEntitlement(ctx, e.ID); err != nil {
				return err
			}
		}
		return tx.DeleteAccount(ctx, id)
	})
	if err != nil {
		return accResult{}, fmt.Errorf("marketplace: removing local state of account %s: %w", id, err)
	}
	log.LogAttrs(ctx, slog.LevelInfo, "marketplace: account deleted at Google; customer data purged", slog.String("source", tr.source))
	return accResult{outcome: outcomeProcessed, purged: true, deleted: deleted}, nil
}

// ---------------------------------------------------------------------------
// Callback context

type cbInfoKey struct{}

type cbInfo struct {
	ent     *procurement.Entitlement
	prev    *Entitlement
	acct    *procurement.Account
	link    *Account
	trigger events.Event
}

func withInfo(ctx context.Context, info *cbInfo) context.Context {
	c := *info // callbacks may keep ctx; later steps must not change what they see
	return context.WithValue(ctx, cbInfoKey{}, &c)
}

func infoFrom(ctx context.Context) *cbInfo {
	i, _ := ctx.Value(cbInfoKey{}).(*cbInfo)
	return i
}

// EntitlementFrom returns, inside a callback, the entitlement as the
// processor just read it from the Procurement API: the state to act on.
// It reports false outside an entitlement callback, and for
// OnEntitlementDeleted (and an OnEntitlementCancelled that reports a
// deletion) since the entitlement no longer exists.
func EntitlementFrom(ctx context.Context) (procurement.Entitlement, bool) {
	if i := infoFrom(ctx); i != nil && i.ent != nil {
		return *i.ent, true
	}
	return procurement.Entitlement{}, false
}

// PreviousEntitlementFrom returns, inside an entitlement callback, the
// entitlement as stored before this change (its previous plan and state),
// or false if the processor had not seen it before.
func PreviousEntitlementFrom(ctx context.Context) (Entitlement, bool) {
	if i := infoFrom(ctx); i != nil && i.prev != nil {
		return *i.prev, true
	}
	return Entitlement{}, false
}

// AccountFrom returns, inside a callback, the account as just read from the
// Procurement API, when the processor read it (OnAccountActive, and
// entitlement callbacks that follow an approval decision).
func AccountFrom(ctx context.Context) (procurement.Account, bool) {
	if i := infoFrom(ctx); i != nil && i.acct != nil {
		return *i.acct, true
	}
	return procurement.Account{}, false
}

// LinkedAccountFrom returns, inside a callback, the stored account of the
// customer concerned, with the VendorUserID linked at sign-up. In
// OnAccountDeleted it is the record about to be removed: the way to find
// the data to purge. It reports false if the account is not known locally.
func LinkedAccountFrom(ctx context.Context) (Account, bool) {
	if i := infoFrom(ctx); i != nil && i.link != nil {
		return *i.link, true
	}
	return Account{}, false
}

// TriggerFrom returns, inside a callback, the decoded message that led to
// it (which may be of another type than the callback: the callback follows
// the change observed, not the message). It reports false when no message
// did: CompleteSignup, Reconcile, Approve and Reject.
func TriggerFrom(ctx context.Context) (events.Event, bool) {
	if i := infoFrom(ctx); i != nil && i.trigger != nil {
		return i.trigger, true
	}
	return nil, false
}

// ---------------------------------------------------------------------------
// Serialisation

// read runs fn, which only reads, in a read-only transaction if the store
// has them (Viewer), and in InTx otherwise. Reads that decide what to
// write are made under the resource's key lock, so they see every commit
// made under it; the commits themselves run in InTx.
func (p *Processor) read(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if p.viewer != nil {
		return p.viewer.View(ctx, fn)
	}
	return p.store.InTx(ctx, fn)
}

func entitlementKey(id string) string { return "entitlement:" + id }
func accountKey(id string) string     { return "account:" + id }

// lock serialises work on key in this process and, with a KeyLocker store,
// across processes.
func (p *Processor) lock(ctx context.Context, key string) (func(), error) {
	unlockLocal, err := p.locks.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	if p.locker == nil {
		return unlockLocal, nil
	}
	unlockShared, err := p.locker.LockKey(ctx, key)
	if err != nil {
		unlockLocal()
		return nil, fmt.Errorf("marketplace: locking %s: %w", key, err)
	}
	return func() { unlockShared(); unlockLocal() }, nil
}

// keyedMutex is a set of mutexes, one per key in use, that can be waited
// for with a context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in the channel = locked
	refs int           // holders and waiters
}

func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("marketplace: waiting for %s: %w", key, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.held
			release()
		})
	}, nil
}
