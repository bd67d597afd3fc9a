package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/api/option"
	servicecontrol "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// ServingChange tells the application that a consumer was blocked (Serving
// false) or serves again (Serving true).
type ServingChange struct {
	EntitlementID string
	ConsumerID    string
	Serving       bool
	Block         Block // the block when Serving is false
}

// Reporter aggregates usage in a ledger (ledger.Ledger) and reports it to
// Service Control.
// Create it with New; it is safe for concurrent use.
type Reporter struct {
	svc     *servicecontrol.Service
	service string
	ledger  ledger.Ledger
	cfg     config
	log     *slog.Logger
	metrics metrics

	flushMu sync.Mutex // one flush at a time

	mu        sync.Mutex
	checks    map[string]checkEntry    // by operation id
	unlisted  map[string]unlistedCount // by operation id: answers with an unlisted check error code
	alerted   map[string]bool          // operation id + "/" + "near"|"missed"
	lastPrune time.Time

	// Lifecycle (lifecycle.go).
	gauges  metric.Registration // nil without a MeterProvider
	closing chan struct{}       // closed by Close
	lifeMu  sync.Mutex
	closed  bool
	runs    sync.WaitGroup // Run calls in progress

	// guardMu guards the seal guards (confirm.go), which the marketplace
	// Processor may add after New.
	guardMu         sync.Mutex
	confirmer       EndConfirmer
	holders         []SealHolder
	warnUnconfirmed sync.Once
}

// New returns a Reporter for the Service Control service serviceName
// ("<product>.endpoints.<provider>.cloud.goog" or the name your Partner
// Engineer gave), keeping its state in l (a memstore, sqlitestore or
// pgstore Store). cfg must declare at least one metric (Config.Metrics);
// opts configure the Service Control client (credentials, endpoint, HTTP
// client), as for any Google API client. Close the Reporter when done.
func New(ctx context.Context, serviceName string, l ledger.Ledger, cfg *Config, opts ...option.ClientOption) (*Reporter, error) {
	c, err := resolve(cfg, serviceName)
	if l == nil {
		err = errors.Join(err, errors.New("nil ledger"))
	}
	if err != nil {
		return nil, fmt.Errorf("usage: new reporter: %w: %w", ErrInvalid, err)
	}
	svc, err := servicecontrol.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("usage: new reporter: service control client: %w", err)
	}
	var rt gcpmarketplace.Runtime
	if cfg != nil {
		rt = cfg.Runtime
	}
	m, err := newMetrics(rt)
	if err != nil {
		return nil, fmt.Errorf("usage: new reporter: creating metrics: %w", err)
	}
	r := &Reporter{
		svc:      svc,
		service:  serviceName,
		ledger:   l,
		cfg:      c,
		log:      c.logger.With(slog.String("service", serviceName)),
		metrics:  m,
		checks:   map[string]checkEntry{},
		unlisted: map[string]unlistedCount{},
		alerted:  map[string]bool{},
		closing:  make(chan struct{}),

		confirmer: c.confirmer,
	}
	if rt.MeterProvider != nil {
		if r.gauges, err = r.registerGauges(rt); err != nil {
			return nil, fmt.Errorf("usage: new reporter: creating metrics: %w", err)
		}
	}
	return r, nil
}

// windowStart is the start of the window containing t.
func (r *Reporter) windowStart(t time.Time) time.Time { return t.UTC().Truncate(r.cfg.window) }

// usageBucket is how finely usage is kept in the ledger before it is
// sealed (at most; see bucketStart): the window groups its buckets, and a cancellation learned after
// the fact (End in the past) refuses the buckets that start at or after
// End, so that at most one bucket's usage past End can be billed.
const usageBucket = time.Minute

// bucketStart is the start of the ledger bucket containing t: a minute, or
// the largest length that divides both a minute and the window (a 90 s
// window has 30 s buckets), so that no bucket straddles two windows.
func (r *Reporter) bucketStart(t time.Time) time.Time {
	a, b := usageBucket, r.cfg.window
	for b != 0 {
		a, b = b, a%b
	}
	return t.UTC().Truncate(a)
}

// Register makes an entitlement's usage reportable, or updates it (a
// cancellation sets End; a reverted one clears it). It is durable when it
// returns and idempotent. Start should be the entitlement's activation:
// Service Control refuses an operation whose interval starts before it. The
// first registration starts the consumer's windows at the current window,
// or at Start if that is later, or, without Start, at the registration
// itself (so that no window reaches back before an activation the Reporter
// was not told); usage between Start and then is accepted and reported in
// the first window. A later registration with a zero Start keeps the Start
// registered.
func (r *Reporter) Register(ctx context.Context, c Consumer) error {
	switch {
	case c.EntitlementID == "":
		return fmt.Errorf("usage: register: empty entitlement id: %w", ErrInvalid)
	case c.UsageReportingID == "":
		return fmt.Errorf("usage: register %s: empty usageReportingId: %w", c.EntitlementID, ErrInvalid)
	case !c.Start.IsZero() && !c.End.IsZero() && c.End.Before(c.Start):
		return fmt.Errorf("usage: register %s: end %v before start %v: %w", c.EntitlementID, c.End, c.Start, ErrInvalid)
	}
	c.Start, c.End = c.Start.UTC(), c.End.UTC()
	now := r.cfg.now().UTC()
	frontier := r.windowStart(now)
	switch {
	case c.Start.IsZero():
		// The activation is unknown: a window from the hour's start could
		// begin before it, and Service Control would refuse it whole.
		frontier = now
	case c.Start.After(frontier):
		frontier = c.Start
	}
	prev, known, err := r.consumerBeforeEnd(ctx, c)
	if err != nil {
		return fmt.Errorf("usage: register %s: %w", c.EntitlementID, err)
	}
	if known && c.Start.IsZero() {
		c.Start = prev.Start
	}
	// An End in effect is neither moved later nor cleared: a later End
	// registered after it, such as the processing time of a deletion or
	// the updateTime of the CANCELLED that follows a term's end, would
	// reopen the usage in between, and so would a zero End (a stale
	// registration from before the cancellation). Clearing an End still in
	// the future (a reverted pending cancellation) is honoured.
	if known && !prev.End.IsZero() && !prev.End.After(r.cfg.now()) && (c.End.IsZero() || c.End.After(prev.End)) {
		r.log.WarnContext(ctx, "usage: register keeps the end already in effect; a later end is ignored",
			slog.String("entitlement", c.EntitlementID), slog.Time("end", prev.End), slog.Time("asked", c.End))
		c.End = prev.End
	}
	if err := r.ledger.PutConsumer(ctx, c, frontier); err != nil {
		return fmt.Errorf("usage: register %s: %w", c.EntitlementID, err)
	}
	if known && !c.End.IsZero() {
		r.checkBilledAfterEnd(ctx, prev, c.End)
	}
	return nil
}

// Record is one measurement of usage.
type Record struct {
	// EntitlementID is the entitlement the usage is billed to, as
	// registered.
	EntitlementID string
	// Metric is the full metric name or the metric id declared in
	// Config.Metrics.
	Metric string
	// Int64 is the amount for an Int64 metric; it must not be negative.
	Int64 int64
	// Double is the amount for a Double metric; it must be finite and not
	// negative.
	Double float64
	// Time is when the usage happened; zero means now. It must not be in
	// the future, before the consumer's Start or at or after its End.
	Time time.Time
	// Labels are the operation's userLabels, such as LabelResourceName
	// and LabelContainerName; they must follow Google's label syntax.
	// Usage with different labels is reported in different operations.
	Labels map[string]string
}

// Record adds usage. When it returns nil the usage is durable in the ledger
// and will be reported exactly once. Bad input returns an error wrapping
// ErrInvalid (also for a metric taken from the usage source, Config.Source),
// ErrUnknownConsumer, ErrBeforeStart, ErrAfterEnd or ErrWindowSealed, and
// nothing is stored.
func (r *Reporter) Record(ctx context.Context, rec Record) error {
	u, err := r.usageOf(rec)
	if err != nil {
		return err
	}
	if _, err := r.ledger.AddUsage(ctx, u); err != nil {
		return fmt.Errorf("usage: record %s for %s: %w", u.Metric, rec.EntitlementID, err)
	}
	return nil
}

func (r *Reporter) usageOf(rec Record) (ledger.Usage, error) {
	bad := func(format string, args ...any) (ledger.Usage, error) {
		return ledger.Usage{}, fmt.Errorf("usage: record for %q: %s: %w", shorten(rec.EntitlementID), fmt.Sprintf(format, args...), ErrInvalid)
	}
	if rec.EntitlementID == "" {
		return bad("empty entitlement id")
	}
	metric := rec.Metric
	kind, ok := r.cfg.metrics[metric]
	if !ok && !strings.Contains(metric, "/") {
		metric = r.service + "/" + metric
		kind, ok = r.cfg.metrics[metric]
	}
	if !ok {
		return bad("metric %q not declared", shorten(rec.Metric))
	}
	if r.cfg.fromSource[metric] {
		return bad("metric %s is taken from the usage source (Config.Source), not recorded", metric)
	}
	switch kind {
	case Int64:
		if rec.Int64 < 0 {
			return bad("negative value %d", rec.Int64)
		}
		if rec.Double != 0 {
			return bad("Double set for int64 metric %s", metric)
		}
	case Double:
		if math.IsNaN(rec.Double) || math.IsInf(rec.Double, 0) || rec.Double < 0 {
			return bad("value %v is not a finite, non-negative number", rec.Double)
		}
		if rec.Int64 != 0 {
			return bad("Int64 set for double metric %s", metric)
		}
	}
	now := r.cfg.now()
	at := rec.Time
	if at.IsZero() {
		at = now
	}
	if at.After(now) {
		return bad("time %v is in the future", at.UTC())
	}
	if err := validateLabels(rec.Labels); err != nil {
		return bad("%v", err)
	}
	return ledger.Usage{
		EntitlementID: rec.EntitlementID,
		At:            at.UTC(),
		Bucket:        r.bucketStart(at),
		Metric:        metric,
		Kind:          kind,
		Labels:        encodeLabels(rec.Labels),
		Int64:         rec.Int64,
		Double:        rec.Double,
	}, nil
}

// ServingState says whether a consumer may be served.
type ServingState struct {
	Serving bool
	Block   Block // why not, when Serving is false
}

// Serving reports whether the entitlement's customer should be served: false
// after services.check answered a stop-serving code, until a later check
// passes. It reads the ledger, so every replica sharing it agrees.
func (r *Reporter) Serving(ctx context.Context, entitlementID string) (ServingState, error) {
	c, err := r.ledger.GetConsumer(ctx, entitlementID)
	if err != nil {
		return ServingState{}, fmt.Errorf("usage: serving state of %s: %w", entitlementID, err)
	}
	return ServingState{Serving: c.Block.Code == "", Block: c.Block}, nil
}

// Backlog lists the windows not reported (Pending, Unknown, Expired) and
// those Google rejected, oldest first, with the reason of each: what an
// operator needs to see.
func (r *Reporter) Backlog(ctx context.Context) ([]Window, error) {
	ws, err := r.ledger.ListWindows(ctx, ledger.WindowQuery{States: []WindowState{StatePending, StateUnknown, StateExpired, StateRejected}})
	if err != nil {
		return nil, fmt.Errorf("usage: backlog: %w", err)
	}
	return ws, nil
}

// Settle records an operator's decision on a window after reconciling it
// with Google's billing (for an Expired or Unknown window): state must be
// StateReported or StateRejected.
func (r *Reporter) Settle(ctx context.Context, operationID string, state WindowState, reason string) error {
	if state != StateReported && state != StateRejected {
		return fmt.Errorf("usage: settle %s: state %q: %w", operationID, state, ErrInvalid)
	}
	return r.override(ctx, "settle", operationID, func(w *Window) {
		w.State, w.Reason = state, "settled: "+reason
		if state == StateReported {
			w.ReportedAt = r.cfg.now()
		}
	})
}

// Retry puts a Rejected or Expired window back into Pending, to be sent
// again with the same operation id at the next flush.
func (r *Reporter) Retry(ctx context.Context, operationID string) error {
	return r.override(ctx, "retry", operationID, func(w *Window) {
		w.State, w.Reason, w.LeaseUntil = StatePending, "retry requested", time.Time{}
	})
}

func (r *Reporter) override(ctx context.Context, op, operationID string, change func(*Window)) error {
	if operationID == "" {
		return fmt.Errorf("usage: %s: empty operation id: %w", op, ErrInvalid)
	}
	ws, err := r.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: operationID})
	if err != nil {
		return fmt.Errorf("usage: %s %s: %w", op, operationID, err)
	}
	if len(ws) == 0 {
		return fmt.Errorf("usage: %s %s: no such window: %w", op, operationID, ErrInvalid)
	}
	w := ws[0]
	change(&w)
	if _, err := r.ledger.UpdateWindows(ctx, "", []ledger.WindowUpdate{updateOf(w)}); err != nil {
		return fmt.Errorf("usage: %s %s: %w", op, operationID, err)
	}
	return nil
}

func updateOf(w Window) ledger.WindowUpdate {
	return ledger.WindowUpdate{
		OperationID: w.OperationID, State: w.State, Reason: w.Reason, Attempts: w.Attempts,
		LastAttempt: w.LastAttempt, ReportedAt: w.ReportedAt, LeaseUntil: w.LeaseUntil, LeaseToken: w.LeaseToken,
	}
}
