package marketplace

import (
	"context"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Config configures a Processor (see New). A nil *Config, like the zero
// Config, means every default: slog.Default(), no metrics, the wall clock,
// automatic approval, 16 messages at once.
type Config struct {
	// Runtime is the logger, meter provider and clock, shared with the
	// other packages' Configs.
	//
	// Logger: records carry event_id, event_type, account_id and
	// entitlement_id where known; pass slog.New(slog.DiscardHandler) to
	// discard.
	//
	// Clock: the times the processor records (processed, parked, queued,
	// poison) and the ack lag. Latency metrics always use the real clock.
	//
	// MeterProvider: the processor's OpenTelemetry instruments (attributes
	// in brackets; never ids):
	//   - gcpmarketplace.events.received, .processed, .duplicate, .stale,
	//     .not_found, .poison, .failed: counters of messages {event}
	//     [event_type]; not_found counts messages about a resource the
	//     Procurement API answers 404 for and never seen (or already
	//     removed) here, acknowledged without effect;
	//   - gcpmarketplace.events.duration: processing time, s [event_type, outcome];
	//   - gcpmarketplace.events.ack_lag: publish time to acknowledgement, s,
	//     measured with the Clock [event_type];
	//   - gcpmarketplace.entitlements.parked: gauge of entitlements waiting
	//     for their account's sign-up {entitlement};
	//   - gcpmarketplace.approvals.queued: gauge of the manual approval
	//     queue {request} [kind].
	//
	// The two gauges read the Store at each collection (in a read-only View
	// when the Store has one, within 5 s) until Close, which unregisters
	// them: several Processors may share one MeterProvider, one after the
	// other or at once. Processors open at once on different Stores
	// observe the same gauge series, so give each its own MeterProvider if
	// you need their gauges apart.
	gcpmarketplace.Runtime

	// Policy decides about new entitlements and plan changes. nil approves
	// every entitlement of a signed-up account and every plan change.
	Policy Policy

	// Concurrency bounds how many messages the processor handles at once,
	// whatever the transport: Run sets its flow control (the Subscriber's
	// MaxOutstandingMessages) to it, and HandleMessage, which PushHandler
	// and your own transports call, waits while that many messages are in
	// flight. Messages about the same account or entitlement are always
	// processed one at a time. 0 (or less) means 16.
	//
	// New sizes its check of a pooled store's connections (ConnPool) by it.
	Concurrency int

	// ReceiveStreams is how many streaming pulls Run opens (the
	// Subscriber's NumGoroutines). 0 (or less) means 1, plenty for
	// Marketplace traffic.
	ReceiveStreams int

	// PoisonAfter makes a message that still fails on its PoisonAfter-th
	// delivery attempt poison: it is recorded in the Store and acknowledged
	// instead of being redelivered again (see Processor.Poison and
	// Processor.Redrive). Pub/Sub reports delivery attempts only on
	// subscriptions with a dead-letter policy (Message.DeliveryAttempt 0
	// means unknown). 0 never gives up on a message that fails for a reason
	// that may pass (a network error, a Store error, a callback error not
	// marked events.Permanent).
	PoisonAfter int

	// Retention is how long processed event ids are kept for deduplication
	// (Run prunes older ones hourly). 0 (or less) means DefaultRetention.
	Retention time.Duration

	// Usage, if set, is told about usage-based entitlements (those with a
	// usageReportingId) as their state changes: when they become usable
	// (usage accepted from their creation time), when a cancellation is
	// pending (usage refused after the end of the term) or reverted, and
	// when they are cancelled or deleted (usage refused after the
	// cancellation). Registration happens before the handler's callbacks
	// (so that OnEntitlementActive may already record usage) and before the
	// commit, so a failure leaves the message unacknowledged and it is
	// retried; Register is idempotent. The processor also makes the
	// reporter confirm entitlement ends with its Procurement client before
	// sealing a window (unless it has its own usage.EndConfirmer), and
	// holds the windows of an entitlement while a message about it is in
	// flight or failed and awaits redelivery (in this process; replicas
	// rely on the confirmation).
	Usage *usage.Reporter
}

// config is a Config with its defaults applied.
type config struct {
	policy        Policy
	concurrency   int
	streams       int
	now           func() time.Time
	retention     time.Duration
	poisonAfter   int
	commitTimeout time.Duration
	usage         usageRegistrar
}

// DefaultRetention is how long processed event ids are kept for
// deduplication unless Config.Retention says otherwise. Pub/Sub keeps an
// unacknowledged message for at most 31 days, so a duplicate can arrive no
// later than that.
const DefaultRetention = 35 * 24 * time.Hour

func newConfig(c *Config) config {
	if c == nil {
		c = &Config{}
	}
	cfg := config{
		policy:        c.Policy,
		concurrency:   c.Concurrency,
		streams:       c.ReceiveStreams,
		now:           c.NowFunc(),
		retention:     c.Retention,
		poisonAfter:   max(c.PoisonAfter, 0),
		commitTimeout: 10 * time.Second,
	}
	if cfg.policy == nil {
		cfg.policy = autoApprove
	}
	if cfg.concurrency < 1 {
		cfg.concurrency = 16
	}
	if cfg.streams < 1 {
		cfg.streams = 1
	}
	if cfg.retention <= 0 {
		cfg.retention = DefaultRetention
	}
	if c.Usage != nil {
		cfg.usage = reporterRegistrar{c.Usage}
	}
	return cfg
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
