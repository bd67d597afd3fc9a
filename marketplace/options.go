package marketplace

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Option configures a Processor (see New).
type Option func(*config)

type config struct {
	policy        Policy
	logger        *slog.Logger
	meterProvider metric.MeterProvider
	concurrency   int
	streams       int
	now           func() time.Time
	retention     time.Duration
	poisonAfter   int
	commitTimeout time.Duration
	usage         usageRegistrar
}

func defaultConfig() config {
	return config{
		policy:        AutoApprove,
		concurrency:   16,
		streams:       1,
		now:           time.Now,
		retention:     DefaultRetention,
		commitTimeout: 10 * time.Second,
	}
}

// DefaultRetention is how long processed event ids are kept for
// deduplication unless WithRetention says otherwise. Pub/Sub keeps an
// unacknowledged message for at most 31 days, so a duplicate can arrive no
// later than that.
const DefaultRetention = 35 * 24 * time.Hour

// WithPolicy sets the approval policy for new entitlements and plan changes.
// The default is AutoApprove.
func WithPolicy(p Policy) Option { return func(c *config) { c.policy = p } }

// WithLogger sets the logger. Records carry event_id, event_type,
// account_id and entitlement_id where known. The default is slog.Default()
// when New runs; pass slog.New(slog.DiscardHandler) to discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMeterProvider sets the OpenTelemetry MeterProvider the processor's
// metrics are created from. Without it, metrics are no-ops.
//
// Instruments (attributes in brackets; never ids):
//   - gcpmarketplace.events.received, .processed, .duplicate, .stale,
//     .not_found, .poison, .failed: counters of messages {event}
//     [event_type]; not_found counts messages about a resource the
//     Procurement API answers 404 for and never seen (or already removed)
//     here, acknowledged without effect;
//   - gcpmarketplace.events.duration: processing time, s [event_type, outcome];
//   - gcpmarketplace.events.ack_lag: publish time to acknowledgement, s,
//     measured with the WithClock clock [event_type];
//   - gcpmarketplace.entitlements.parked: gauge of entitlements waiting for
//     their account's sign-up {entitlement};
//   - gcpmarketplace.approvals.queued: gauge of the manual approval queue
//     {request} [kind].
//
// The two gauges read the Store at each collection (in a read-only View
// when the Store has one, within 5 s), for as long as the MeterProvider
// lives: create one Processor per MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meterProvider = mp }
}

// WithConcurrency bounds how many messages the processor handles at once,
// whatever the transport: Receive sets its flow control (the Subscriber's
// MaxOutstandingMessages) to n, and HandleMessage, which PushHandler and
// your own transports call, waits while n messages are in flight. Messages
// about the same account or entitlement are always processed one at a
// time, whatever n. The default is 16; n < 1 is ignored.
//
// New sizes its check of a pooled store's connections (ConnPool) by n.
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.concurrency = n
		}
	}
}

// WithReceiveStreams sets how many streaming pulls Receive opens (the
// Subscriber's NumGoroutines). The default is 1, plenty for Marketplace
// traffic; n < 1 is ignored.
func WithReceiveStreams(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.streams = n
		}
	}
}

// WithClock sets the clock used for the times the processor records
// (processed, parked, queued, poison). The default is time.Now. Latency
// metrics always use the real clock.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithRetention sets how long processed event ids are kept (see Prune).
// The default is DefaultRetention; d <= 0 is ignored.
func WithRetention(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.retention = d
		}
	}
}

// WithPoisonAfter makes a message that still fails on its n-th delivery
// attempt poison: it is recorded in the Store and acknowledged instead of
// being redelivered again. Pub/Sub reports delivery attempts only on
// subscriptions with a dead-letter policy (Message.DeliveryAttempt 0 means
// unknown). The default, 0, never gives up on a message that fails for a
// reason that may pass (a network error, a Store error, a callback error
// not marked events.Permanent).
func WithPoisonAfter(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.poisonAfter = n
		}
	}
}

// WithUsageReporter registers usage-based entitlements (those with a
// usageReportingId) with r as their state changes: when they become
// usable (usage accepted from their creation time), when a cancellation is
// pending (usage refused after the end of the term) or reverted, and when
// they are cancelled or deleted (usage refused after the cancellation).
// Registration happens before the handler's callbacks (so that
// OnEntitlementActive may already Record usage) and before the commit, so a
// failure leaves the message unacknowledged and it is retried; Register is
// idempotent. The processor also makes r confirm entitlement ends with its
// Procurement client before sealing a window (unless r has its own
// usage.EndConfirmer), and holds the windows of an entitlement while a
// message about it is in flight or failed and awaits redelivery (in this
// process; replicas rely on the confirmation).
func WithUsageReporter(r *usage.Reporter) Option {
	return func(c *config) {
		if r != nil {
			c.usage = reporterRegistrar{r}
		}
	}
}

type reporterRegistrar struct{ r *usage.Reporter }

func (u reporterRegistrar) register(ctx context.Context, c usageConsumer) error {
	return u.r.Register(ctx, usage.Consumer{
		EntitlementID: c.EntitlementID, UsageReportingID: c.UsageReportingID, Start: c.Start, End: c.End,
	})
}

// usageRegistrar is what the processor needs from a usage reporter: make an
// entitlement's usage reportable (or close it) durably and idempotently.
type usageRegistrar interface {
	register(ctx context.Context, c usageConsumer) error
}

// usageConsumer mirrors usage.Consumer, so that the processor's wiring does
// not depend on the usage package's other types.
type usageConsumer struct {
	EntitlementID    string
	UsageReportingID string
	Start, End       time.Time
}
