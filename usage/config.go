package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gcpmarketplace/gcpmarketplace"
)

// DefaultSealGrace is how long after a window ends it is sealed when
// Config.SealGrace is zero.
const DefaultSealGrace = time.Minute

// MaxRequestBytes is Service Control's request size limit read as 2^20
// bytes, the maximum of Config.MaxRequestBytes.
const MaxRequestBytes = 1 << 20

// DefaultMaxRequestBytes is the default of Config.MaxRequestBytes: Google
// states the limit as "1MB", which may mean 10^6 bytes, so the default
// keeps that margin below MaxRequestBytes.
const DefaultMaxRequestBytes = 1_000_000

// Defaults of the Config fields that have one (see each field).
const (
	defaultWindow           = time.Hour
	defaultFlushInterval    = time.Minute
	defaultCheckCacheTTL    = 60 * time.Second
	defaultLease            = 5 * time.Minute
	defaultRPCTimeout       = 30 * time.Second
	defaultConcurrency      = 8
	defaultMaxChecks        = 10000
	defaultReplayLimit      = 30 * 24 * time.Hour
	defaultRetention        = 40 * 24 * time.Hour
	defaultAlertMargin      = 15 * time.Minute
	defaultStopServingCodes = "SERVICE_NOT_ACTIVATED BILLING_DISABLED PROJECT_DELETED PROJECT_INVALID CONSUMER_INVALID PERMISSION_DENIED"
)

// DefaultStopServingCodes returns the services.check error codes after
// which a consumer is blocked when Config.StopServingCodes is nil: the
// three Marketplace names (SERVICE_NOT_ACTIVATED, BILLING_DISABLED,
// PROJECT_DELETED) and three that equally mean the consumer cannot be
// billed (PROJECT_INVALID, CONSUMER_INVALID, PERMISSION_DENIED). The
// *_UNAVAILABLE family, LOAD_SHEDDING, RESOURCE_EXHAUSTED and
// INJECTED_ERROR are transient: the window waits and the check is retried,
// without cutting anyone off. Any other code is treated the same until the
// window's deadline has passed, and then rejects the window (see the
// package documentation, "Serving").
func DefaultStopServingCodes() []string { return strings.Fields(defaultStopServingCodes) }

// Config configures a Reporter (New). Only Metrics is required; every
// other zero field takes the default its comment gives. Durations that
// may be switched off take a negative value for "none".
type Config struct {
	// Runtime is the logger, meter provider and clock shared with the rest
	// of the SDK. The meter provider gets these instruments (attributes in
	// brackets; never ids):
	//   - gcpmarketplace.servicecontrol.calls {call} [method]:
	//     services.check and services.report calls;
	//   - gcpmarketplace.servicecontrol.errors {call} [method, status]:
	//     calls that failed, by canonical status (CANCELLED,
	//     DEADLINE_EXCEEDED or UNKNOWN when no response came back);
	//   - gcpmarketplace.servicecontrol.duration s [method];
	//   - gcpmarketplace.usage.check_errors {error} [code]: CheckErrors
	//     services.check answered, by code (BILLING_DISABLED, ...);
	//   - gcpmarketplace.usage.windows {window} [state]: gauge of the
	//     windows not reported (pending, unknown, expired) and rejected, in
	//     the ledger (saturating at 10000 per query);
	//   - gcpmarketplace.usage.oldest_unreported_age s: gauge, how long ago
	//     the oldest pending, unknown or expired window ended (0 if none);
	//   - gcpmarketplace.usage.consumers.blocked {consumer}: gauge of the
	//     consumers blocked by a stop-serving check error.
	// The gauges read the ledger at each collection (within 5 s) until
	// Close unregisters them.
	gcpmarketplace.Runtime

	// Metrics declares the metrics and their value kinds, by full metric
	// name "<service>/<metric>" or by metric id alone, which is then
	// prefixed with the service name. Record refuses undeclared metrics;
	// at least one metric must be declared.
	Metrics map[string]MetricKind

	// Window is the window length (zero: one hour). It must divide an hour
	// evenly (1m, 5m, 10m, 15m, 20m, 30m, 1h, ...): Google wants at most
	// hourly windows.
	Window time.Duration
	// SealGrace is how long after a window ends it is sealed (zero:
	// DefaultSealGrace; negative: at once), so that records in flight at
	// the boundary still land in it.
	SealGrace time.Duration
	// FlushInterval is how often Run flushes (zero: one minute).
	FlushInterval time.Duration
	// CheckCacheTTL is how long a services.check answer is reused for the
	// same operation id (zero: 60 s, also the maximum Service Control
	// allows; negative: never reused).
	CheckCacheTTL time.Duration
	// Lease is how long a flushing replica holds the windows it claimed
	// (zero: five minutes); another replica takes them over after that.
	// The lease is renewed when windows are marked sent, and must be
	// longer than RPCTimeout, so that no replica claims a window in flight.
	Lease time.Duration
	// RPCTimeout bounds each check and report call, and each call of the
	// usage source (zero: 30 s).
	RPCTimeout time.Duration
	// Concurrency is how many services.check calls, or usage source
	// calls, run at once (zero: 8).
	Concurrency int
	// MaxChecksPerFlush bounds the services.check calls of one Flush
	// (zero: 10,000, so that in steady state, one window per consumer per
	// hour, 10,000 consumers are checked in one flush). Every window is
	// checked with its own operation id before it is sent; windows over
	// the bound wait for the next flush, oldest first.
	MaxChecksPerFlush int
	// ReplayLimit is how long usage of a blocked consumer is kept for
	// replay (zero: 30 days, Google's recommended grace period); a window
	// older than that whose consumer is still blocked is rejected.
	ReplayLimit time.Duration
	// Retention is how long reported and rejected windows stay in the
	// ledger after they were sealed (zero: 40 days); Flush prunes older
	// ones.
	Retention time.Duration
	// MaxRequestBytes caps the size of one services.report request on the
	// wire, its protobuf size, which is what Service Control's 1 MB limit
	// is stated on (zero: DefaultMaxRequestBytes; at most MaxRequestBytes).
	// A single
	// operation is always sent, however large.
	MaxRequestBytes int
	// Owner names this reporter in window leases (empty: a random UUID).
	// Give every replica sharing a ledger its own.
	Owner string

	// StopServingCodes are the services.check error codes that block a
	// consumer (nil: DefaultStopServingCodes()).
	StopServingCodes []string
	// OnServingChange, if set, is told when a consumer is blocked by a
	// stop-serving check error or serves again. It runs in the flushing
	// goroutine: keep it short.
	OnServingChange func(context.Context, ServingChange)
	// OnDeadlineAlert, if set, is told once per window and process when a
	// window is still not reported DeadlineAlertMargin before its
	// deadline, and again when the deadline has passed.
	OnDeadlineAlert func(context.Context, DeadlineAlert)
	// DeadlineAlertMargin: see OnDeadlineAlert (zero: 15 minutes;
	// negative: only once the deadline has passed). Windows held unsealed
	// are also logged from then on.
	DeadlineAlertMargin time.Duration

	// Source, if set, gives the usage of SourceMetrics (every declared
	// metric if SourceMetrics is empty), asked at seal for each consumer's
	// totals per window, instead of Record. The two do not mix for a
	// metric: Record refuses a metric the source provides (ErrInvalid),
	// and the source may only return its own metrics, so no unit can be
	// counted by both. Metrics not given to the source are recorded as
	// usual; a window's operation then carries the recorded and the
	// source's metrics of the same label set.
	Source Source
	// SourceMetrics: see Source.
	SourceMetrics []string

	// EndConfirmer, if set, is asked before sealing whether each
	// consumer's entitlement had ended before the window's end (see
	// EndConfirmer). A consumer whose end cannot be confirmed (the
	// confirmer failed) is not sealed: its window waits, and
	// OnDeadlineAlert is told when its deadline nears or passes.
	//
	// Without one, and without a marketplace Processor given the Reporter
	// (which sets one, see ConfirmEndsWith), a cancellation learned after
	// its window was sealed is billed: the Reporter logs a warning at its
	// first seal.
	EndConfirmer EndConfirmer
	// OnBilledAfterEnd, if set, is told when an end is learned after usage
	// past it was sealed (see BilledAfterEnd). It is also logged at Error
	// level.
	OnBilledAfterEnd func(context.Context, BilledAfterEnd)

	// afterReport is a test hook (export_test.go): called right after a
	// report RPC returns, before its outcome is written to the ledger.
	afterReport func()
	// beforeSend is a test hook (export_test.go): called before windows
	// are marked sent.
	beforeSend func()
}

// config is a Config resolved: defaults applied, metric names full.
type config struct {
	metrics          map[string]MetricKind
	now              func() time.Time
	logger           *slog.Logger
	window           time.Duration
	grace            time.Duration
	interval         time.Duration
	checkTTL         time.Duration
	lease            time.Duration
	rpcTimeout       time.Duration
	concurrency      int
	maxChecks        int
	replayLimit      time.Duration
	retention        time.Duration
	maxBytes         int
	owner            string
	stopCodes        map[string]bool
	onServing        func(context.Context, ServingChange)
	alertMargin      time.Duration
	onAlert          func(context.Context, DeadlineAlert)
	source           Source
	fromSource       map[string]bool // full names of the metrics the source provides
	confirmer        EndConfirmer
	onBilledAfterEnd func(context.Context, BilledAfterEnd)
	afterReport      func()
	beforeSend       func()
}

// orDefault is v, or def when v is zero; a negative v means none (0) when
// none is allowed.
func orDefault[T int | time.Duration](v, def T, noneAllowed bool) T {
	switch {
	case v == 0:
		return def
	case v < 0 && noneAllowed:
		return 0
	}
	return v
}

// resolve validates c for serviceName and applies its defaults.
func resolve(c *Config, serviceName string) (config, error) {
	if c == nil {
		c = &Config{}
	}
	cfg := config{
		now:              c.NowFunc(),
		logger:           c.Log(),
		window:           orDefault(c.Window, defaultWindow, false),
		grace:            orDefault(c.SealGrace, DefaultSealGrace, true),
		interval:         orDefault(c.FlushInterval, defaultFlushInterval, false),
		checkTTL:         orDefault(c.CheckCacheTTL, defaultCheckCacheTTL, true),
		lease:            orDefault(c.Lease, defaultLease, false),
		rpcTimeout:       orDefault(c.RPCTimeout, defaultRPCTimeout, false),
		concurrency:      orDefault(c.Concurrency, defaultConcurrency, false),
		maxChecks:        orDefault(c.MaxChecksPerFlush, defaultMaxChecks, false),
		replayLimit:      orDefault(c.ReplayLimit, defaultReplayLimit, false),
		retention:        orDefault(c.Retention, defaultRetention, false),
		maxBytes:         orDefault(c.MaxRequestBytes, DefaultMaxRequestBytes, false),
		owner:            c.Owner,
		onServing:        c.OnServingChange,
		alertMargin:      orDefault(c.DeadlineAlertMargin, defaultAlertMargin, true),
		onAlert:          c.OnDeadlineAlert,
		source:           c.Source,
		confirmer:        c.EndConfirmer,
		onBilledAfterEnd: c.OnBilledAfterEnd,
		afterReport:      c.afterReport,
		beforeSend:       c.beforeSend,
		stopCodes:        map[string]bool{},
	}
	if cfg.owner == "" {
		cfg.owner = uuid.NewString()
	}
	codes := c.StopServingCodes
	if codes == nil {
		codes = DefaultStopServingCodes()
	}
	for _, code := range codes {
		cfg.stopCodes[code] = true
	}
	var errs []error
	if serviceName == "" {
		errs = append(errs, errors.New("empty service name"))
	}
	if len(c.Metrics) == 0 {
		errs = append(errs, errors.New("no metric declared (Config.Metrics)"))
	}
	cfg.metrics = map[string]MetricKind{}
	for name, kind := range c.Metrics {
		if kind != Int64 && kind != Double {
			errs = append(errs, fmt.Errorf("metric %q: unknown kind %d", name, kind))
		}
		cfg.metrics[fullMetric(serviceName, name)] = kind
	}
	if cfg.window <= 0 || cfg.window > time.Hour || time.Hour%cfg.window != 0 {
		errs = append(errs, fmt.Errorf("window %v does not divide an hour", cfg.window))
	}
	if cfg.checkTTL > defaultCheckCacheTTL {
		errs = append(errs, fmt.Errorf("check cache TTL %v above 60s", cfg.checkTTL))
	}
	if cfg.maxBytes <= 0 || cfg.maxBytes > MaxRequestBytes {
		errs = append(errs, fmt.Errorf("max request bytes %d outside (0, %d]", cfg.maxBytes, MaxRequestBytes))
	}
	if cfg.lease <= 0 || cfg.rpcTimeout <= 0 || cfg.interval <= 0 || cfg.concurrency <= 0 || cfg.maxChecks <= 0 ||
		cfg.replayLimit <= 0 || cfg.retention <= 0 {
		errs = append(errs, errors.New("lease, RPC timeout, flush interval, concurrency, checks per flush, replay limit and retention must be positive"))
	}
	if cfg.lease > 0 && cfg.lease <= cfg.rpcTimeout {
		errs = append(errs, fmt.Errorf("lease %v not longer than the RPC timeout %v", cfg.lease, cfg.rpcTimeout))
	}
	if err := cfg.resolveSource(serviceName, c.SourceMetrics); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

// fullMetric is name prefixed with the service name unless it is already
// a full metric name.
func fullMetric(serviceName, name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return serviceName + "/" + name
}

// resolveSource turns the metrics given to the source into full names,
// every declared metric when none was given.
func (c *config) resolveSource(serviceName string, metrics []string) error {
	if c.source == nil {
		if len(metrics) > 0 {
			return errors.New("source metrics without a usage source")
		}
		return nil
	}
	c.fromSource = map[string]bool{}
	if len(metrics) == 0 {
		for m := range c.metrics {
			c.fromSource[m] = true
		}
		return nil
	}
	for _, m := range metrics {
		full := fullMetric(serviceName, m)
		if _, ok := c.metrics[full]; !ok {
			return fmt.Errorf("usage source metric %q not declared in Config.Metrics", m)
		}
		c.fromSource[full] = true
	}
	return nil
}
