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

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/api/option"
	servicecontrol "google.golang.org/api/servicecontrol/v1"
)

// Defaults of the Reporter's options.
const (
	DefaultWindow        = time.Hour
	DefaultSealGrace     = time.Minute
	DefaultFlushInterval = time.Minute
	DefaultCheckCacheTTL = 60 * time.Second
	DefaultLease         = 5 * time.Minute
	DefaultRPCTimeout    = 30 * time.Second
	DefaultConcurrency   = 8
	DefaultReplayLimit   = 30 * 24 * time.Hour
	DefaultRetention     = 40 * 24 * time.Hour
	// MaxRequestBytes is Service Control's request size limit.
	MaxRequestBytes = 1 << 20
)

// DefaultStopServingCodes are the services.check error codes after which a
// consumer is blocked: the three Marketplace names (SERVICE_NOT_ACTIVATED,
// BILLING_DISABLED, PROJECT_DELETED) and three that equally mean the
// consumer cannot be billed (PROJECT_INVALID, CONSUMER_INVALID,
// PERMISSION_DENIED). The *_UNAVAILABLE family, LOAD_SHEDDING,
// RESOURCE_EXHAUSTED and INJECTED_ERROR are transient: the window waits and
// the check is retried, without cutting anyone off. Any other code is
// treated the same until the window's deadline has passed, and then rejects
// the window (see the package documentation, "Serving").
var DefaultStopServingCodes = []string{
	"SERVICE_NOT_ACTIVATED", "BILLING_DISABLED", "PROJECT_DELETED",
	"PROJECT_INVALID", "CONSUMER_INVALID", "PERMISSION_DENIED",
}

// ServingChange tells the application that a consumer was blocked (Serving
// false) or serves again (Serving true).
type ServingChange struct {
	EntitlementID string
	ConsumerID    string
	Serving       bool
	Block         Block // the block when Serving is false
}

// DeadlineAlert tells the application that a window is not reported and its
// reporting deadline is near (Missed false) or has passed (Missed true).
//
// A window that cannot be sealed yet (its end is not confirmed, see
// WithEndConfirmer; the processor has an unsettled message for its
// entitlement; its usage source failed, see WithSource) is alerted too, with
// Held set to why: its Window has no
// OperationID, values or state yet, only the consumer, the interval, the
// deadline and the error as Reason. It is sealed and reported once the
// cause is gone, late or not.
type DeadlineAlert struct {
	Window Window
	Missed bool
	Held   error // non-nil for a window not sealed yet: why it waits
}

type config struct {
	clientOptions []option.ClientOption
	metrics       map[string]MetricKind
	now           func() time.Time
	logger        *slog.Logger
	window        time.Duration
	grace         time.Duration
	interval      time.Duration
	checkTTL      time.Duration
	lease         time.Duration
	rpcTimeout    time.Duration
	concurrency   int
	maxChecks     int
	replayLimit   time.Duration
	retention     time.Duration
	maxBytes      int
	owner         string
	stopCodes     map[string]bool
	onServing     func(context.Context, ServingChange)
	alertMargin   time.Duration
	onAlert       func(context.Context, DeadlineAlert)
	meterProvider metric.MeterProvider
	source        Source          // WithSource
	sourceMetrics []string        // as given to WithSource
	fromSource    map[string]bool // full names of the metrics the source provides
	err           error

	confirmer        EndConfirmer                          // confirm.go
	onBilledAfterEnd func(context.Context, BilledAfterEnd) // confirm.go

	// afterReport is a test hook (export_test.go): called right after a
	// report RPC returns, before its outcome is written to the ledger.
	afterReport func()
	// beforeSend is a test hook (export_test.go): called before windows
	// are marked sent.
	beforeSend func()
}

// Option configures New.
type Option func(*config)

// WithClientOptions passes options to servicecontrol.NewService
// (credentials, endpoint, HTTP client).
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(c *config) { c.clientOptions = append(c.clientOptions, opts...) }
}

// WithMetric declares a metric and its value kind. name is the full metric
// name "<service>/<metric>" or the metric id alone, which is then prefixed
// with the service name. Record refuses undeclared metrics; at least one
// metric must be declared.
func WithMetric(name string, kind MetricKind) Option {
	return func(c *config) {
		if c.metrics == nil {
			c.metrics = map[string]MetricKind{}
		}
		if kind != Int64 && kind != Double {
			c.err = errors.Join(c.err, fmt.Errorf("metric %q: unknown kind %d", name, kind))
		}
		c.metrics[name] = kind
	}
}

// WithClock sets the clock (default time.Now). Tests pass the emulator's.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLogger sets the logger. The default is slog.Default() when the
// reporter is made; pass slog.New(slog.DiscardHandler) to discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithWindow sets the window length (default one hour). It must divide an
// hour evenly (1m, 5m, 10m, 15m, 20m, 30m, 1h, ...): Google wants at most
// hourly windows.
func WithWindow(d time.Duration) Option { return func(c *config) { c.window = d } }

// WithSealGrace sets how long after a window ends it is sealed (default one
// minute), so that records in flight at the boundary still land in it.
func WithSealGrace(d time.Duration) Option { return func(c *config) { c.grace = d } }

// WithFlushInterval sets how often Run flushes (default one minute).
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithCheckCacheTTL sets how long a services.check answer is reused for
// the same operation id (default and maximum 60 s, as Service Control
// allows).
func WithCheckCacheTTL(d time.Duration) Option { return func(c *config) { c.checkTTL = d } }

// WithLease sets how long a flushing replica holds the windows it claimed
// (default five minutes); another replica takes them over after that. The
// lease is renewed when windows are marked sent, and must be longer than
// the RPC timeout, so that no replica claims a window in flight.
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithRPCTimeout bounds each check and report call (default 30 s).
func WithRPCTimeout(d time.Duration) Option { return func(c *config) { c.rpcTimeout = d } }

// WithConcurrency sets how many services.check calls run at once (default 8).
func WithConcurrency(n int) Option { return func(c *config) { c.concurrency = n } }

// WithMaxChecksPerFlush bounds the services.check calls of one Flush
// (default DefaultMaxChecksPerFlush). Every window is checked with its own
// operation id before it is sent; windows over the bound wait for the next
// flush, oldest first.
func WithMaxChecksPerFlush(n int) Option { return func(c *config) { c.maxChecks = n } }

// WithReplayLimit sets how long usage of a blocked consumer is kept for
// replay (default 30 days, Google's recommended grace period); a window
// older than that whose consumer is still blocked is rejected.
func WithReplayLimit(d time.Duration) Option { return func(c *config) { c.replayLimit = d } }

// WithRetention sets how long reported and rejected windows stay in the
// ledger (default 40 days); Flush prunes older ones.
func WithRetention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// WithMaxRequestBytes caps the encoded size of one services.report request
// (default and maximum MaxRequestBytes).
func WithMaxRequestBytes(n int) Option { return func(c *config) { c.maxBytes = n } }

// WithOwner names this reporter in window leases (default a random UUID).
// Give every replica sharing a ledger its own.
func WithOwner(id string) Option { return func(c *config) { c.owner = id } }

// WithStopServingCodes replaces DefaultStopServingCodes.
func WithStopServingCodes(codes ...string) Option {
	return func(c *config) {
		c.stopCodes = map[string]bool{}
		for _, code := range codes {
			c.stopCodes[code] = true
		}
	}
}

// WithServingChanged sets the callback told when a consumer is blocked by a
// stop-serving check error or serves again. It runs in the flushing
// goroutine: keep it short.
func WithServingChanged(fn func(context.Context, ServingChange)) Option {
	return func(c *config) { c.onServing = fn }
}

// WithDeadlineAlert sets the callback told, once per window and process,
// when a window is still not reported margin before its deadline, and again
// when the deadline has passed.
func WithDeadlineAlert(margin time.Duration, fn func(context.Context, DeadlineAlert)) Option {
	return func(c *config) { c.alertMargin, c.onAlert = margin, fn }
}

// Reporter aggregates usage in a Ledger and reports it to Service Control.
// Create it with New; it is safe for concurrent use.
type Reporter struct {
	svc     *servicecontrol.Service
	service string
	ledger  Ledger
	cfg     config
	log     *slog.Logger
	metrics metrics

	flushMu sync.Mutex // one flush at a time

	mu        sync.Mutex
	checks    map[string]checkEntry    // by operation id
	unlisted  map[string]unlistedCount // by operation id: answers with an unlisted check error code
	alerted   map[string]bool          // operation id + "/" + "near"|"missed"
	lastPrune time.Time

	// guardMu guards the seal guards (confirm.go), which the marketplace
	// Processor may add after New.
	guardMu         sync.Mutex
	confirmer       EndConfirmer
	holders         []SealHolder
	warnUnconfirmed sync.Once
}

// New returns a Reporter for the Service Control service serviceName
// ("<product>.endpoints.<provider>.cloud.goog" or the name your Partner
// Engineer gave), keeping its state in ledger.
func New(ctx context.Context, serviceName string, ledger Ledger, opts ...Option) (*Reporter, error) {
	cfg := config{
		now:         time.Now,
		logger:      slog.Default(),
		window:      DefaultWindow,
		grace:       DefaultSealGrace,
		interval:    DefaultFlushInterval,
		checkTTL:    DefaultCheckCacheTTL,
		lease:       DefaultLease,
		rpcTimeout:  DefaultRPCTimeout,
		concurrency: DefaultConcurrency,
		maxChecks:   DefaultMaxChecksPerFlush,
		replayLimit: DefaultReplayLimit,
		retention:   DefaultRetention,
		maxBytes:    MaxRequestBytes,
		owner:       uuid.NewString(),
	}
	WithStopServingCodes(DefaultStopServingCodes...)(&cfg)
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if serviceName == "" {
		errs = append(errs, errors.New("empty service name"))
	}
	if ledger == nil {
		errs = append(errs, errors.New("nil ledger"))
	}
	if len(cfg.metrics) == 0 {
		errs = append(errs, errors.New("no metric declared (use WithMetric)"))
	}
	if cfg.window <= 0 || cfg.window > time.Hour || time.Hour%cfg.window != 0 {
		errs = append(errs, fmt.Errorf("window %v does not divide an hour", cfg.window))
	}
	if cfg.checkTTL < 0 || cfg.checkTTL > DefaultCheckCacheTTL {
		errs = append(errs, fmt.Errorf("check cache TTL %v outside [0, 60s]", cfg.checkTTL))
	}
	if cfg.maxBytes <= 0 || cfg.maxBytes > MaxRequestBytes {
		errs = append(errs, fmt.Errorf("max request bytes %d outside (0, %d]", cfg.maxBytes, MaxRequestBytes))
	}
	if cfg.grace < 0 || cfg.lease <= 0 || cfg.rpcTimeout <= 0 || cfg.interval <= 0 || cfg.concurrency <= 0 || cfg.maxChecks <= 0 {
		errs = append(errs, errors.New("grace, lease, RPC timeout, flush interval, concurrency and checks per flush must be positive"))
	}
	if cfg.lease > 0 && cfg.lease <= cfg.rpcTimeout {
		errs = append(errs, fmt.Errorf("lease %v not longer than the RPC timeout %v", cfg.lease, cfg.rpcTimeout))
	}
	if cfg.owner == "" {
		errs = append(errs, errors.New("empty owner"))
	}
	if cfg.now == nil || cfg.logger == nil {
		errs = append(errs, errors.New("nil clock or logger"))
	}
	if cfg.err != nil {
		errs = append(errs, cfg.err)
	}
	metrics := map[string]MetricKind{}
	for name, kind := range cfg.metrics {
		if !strings.Contains(name, "/") {
			name = serviceName + "/" + name
		}
		metrics[name] = kind
	}
	cfg.metrics = metrics
	if err := cfg.resolveSourceMetrics(serviceName); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("usage: new reporter: %w: %w", ErrInvalid, err)
	}
	svc, err := servicecontrol.NewService(ctx, cfg.clientOptions...)
	if err != nil {
		return nil, fmt.Errorf("usage: new reporter: service control client: %w", err)
	}
	m, err := newMetrics(cfg.meterProvider)
	if err != nil {
		return nil, fmt.Errorf("usage: new reporter: creating metrics: %w", err)
	}
	r := &Reporter{
		svc:      svc,
		service:  serviceName,
		ledger:   ledger,
		cfg:      cfg,
		log:      cfg.logger.With(slog.String("service", serviceName)),
		metrics:  m,
		checks:   map[string]checkEntry{},
		unlisted: map[string]unlistedCount{},
		alerted:  map[string]bool{},

		confirmer: cfg.confirmer,
	}
	if cfg.meterProvider != nil {
		if err := r.registerGauges(cfg.meterProvider); err != nil {
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
// returns and idempotent. The first registration starts the consumer's
// windows at the current window (or at Start if that is later); usage
// between Start and then is accepted and reported in the first window.
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
	frontier := r.windowStart(r.cfg.now())
	if c.Start.After(frontier) {
		frontier = c.Start
	}
	prev, known, err := r.consumerBeforeEnd(ctx, c)
	if err != nil {
		return fmt.Errorf("usage: register %s: %w", c.EntitlementID, err)
	}
	// An End in effect is not moved later: a later End registered after it,
	// such as the processing time of a deletion or the updateTime of the
	// CANCELLED that follows a term's end, would reopen the usage in
	// between. Clearing End (a reverted cancellation) is still honoured.
	if known && !prev.End.IsZero() && !prev.End.After(r.cfg.now()) && c.End.After(prev.End) {
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
	// Metric is the full metric name or the metric id declared with
	// WithMetric.
	Metric string
	// Value is the amount for an Int64 metric; it must not be negative.
	Value int64
	// DoubleValue is the amount for a Double metric; it must be finite and
	// not negative.
	DoubleValue float64
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
// ErrInvalid (also for a metric taken from the usage source, WithSource),
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

func (r *Reporter) usageOf(rec Record) (Usage, error) {
	bad := func(format string, args ...any) (Usage, error) {
		return Usage{}, fmt.Errorf("usage: record for %q: %s: %w", shorten(rec.EntitlementID), fmt.Sprintf(format, args...), ErrInvalid)
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
		return bad("metric %s is taken from the usage source (WithSource), not recorded", metric)
	}
	switch kind {
	case Int64:
		if rec.Value < 0 {
			return bad("negative value %d", rec.Value)
		}
		if rec.DoubleValue != 0 {
			return bad("DoubleValue set for int64 metric %s", metric)
		}
	case Double:
		if math.IsNaN(rec.DoubleValue) || math.IsInf(rec.DoubleValue, 0) || rec.DoubleValue < 0 {
			return bad("value %v is not a finite, non-negative number", rec.DoubleValue)
		}
		if rec.Value != 0 {
			return bad("Value set for double metric %s", metric)
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
	return Usage{
		EntitlementID: rec.EntitlementID,
		At:            at.UTC(),
		Window:        r.bucketStart(at),
		Metric:        metric,
		Kind:          kind,
		Labels:        encodeLabels(rec.Labels),
		Int64:         rec.Value,
		Double:        rec.DoubleValue,
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
	ws, err := r.ledger.ListWindows(ctx, WindowQuery{States: []WindowState{StatePending, StateUnknown, StateExpired, StateRejected}})
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
	ws, err := r.ledger.ListWindows(ctx, WindowQuery{OperationID: operationID})
	if err != nil {
		return fmt.Errorf("usage: %s %s: %w", op, operationID, err)
	}
	if len(ws) == 0 {
		return fmt.Errorf("usage: %s %s: no such window: %w", op, operationID, ErrInvalid)
	}
	w := ws[0]
	change(&w)
	if _, err := r.ledger.UpdateWindows(ctx, "", []WindowUpdate{updateOf(w)}); err != nil {
		return fmt.Errorf("usage: %s %s: %w", op, operationID, err)
	}
	return nil
}

func updateOf(w Window) WindowUpdate {
	return WindowUpdate{
		OperationID: w.OperationID, State: w.State, Reason: w.Reason, Attempts: w.Attempts,
		LastAttempt: w.LastAttempt, ReportedAt: w.ReportedAt, LeaseUntil: w.LeaseUntil, LeaseToken: w.LeaseToken,
	}
}
