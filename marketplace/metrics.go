package marketplace

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/internal/telemetry"
)

// The processor's OpenTelemetry instruments (see Config.Runtime).

const meterName = "github.com/gcpmarketplace/gcpmarketplace/marketplace"

type metrics struct {
	received, processed, duplicate, stale, notFound, poison, failed metric.Int64Counter
	duration, ackLag                                                metric.Float64Histogram
}

// gaugeTimeout bounds the Store reads of one collection of the observable
// gauges, so that a slow Store cannot stall the application's metrics.
const gaugeTimeout = 5 * time.Second

func newMetrics(m metric.Meter) (metrics, error) {
	var (
		out  metrics
		errs []error
	)
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{event}"))
		errs = append(errs, err)
		return c
	}
	out.received = counter("gcpmarketplace.events.received", "Marketplace messages received, by event type.")
	out.processed = counter("gcpmarketplace.events.processed", "Messages whose effects were applied and committed.")
	out.duplicate = counter("gcpmarketplace.events.duplicate", "Messages skipped because their eventId was already processed.")
	out.stale = counter("gcpmarketplace.events.stale", "Messages that revealed nothing newer than the stored state.")
	out.notFound = counter("gcpmarketplace.events.not_found",
		"Messages about a resource the Procurement API answers 404 for and unknown locally, acknowledged without effect.")
	out.poison = counter("gcpmarketplace.events.poison", "Messages recorded as poison and acknowledged.")
	out.failed = counter("gcpmarketplace.events.failed", "Messages not acknowledged because processing failed; Pub/Sub redelivers them.")
	var err error
	out.duration, err = m.Float64Histogram("gcpmarketplace.events.duration",
		telemetry.Duration("Time to process one message, from decoding to commit.")...)
	errs = append(errs, err)
	out.ackLag, err = m.Float64Histogram("gcpmarketplace.events.ack_lag",
		telemetry.Lag("Time from a message's publication by Pub/Sub to its acknowledgement, by event type.")...)
	errs = append(errs, err)
	return out, errors.Join(errs...)
}

// registerGauges observes the Store's parked entitlements and approval
// queue at each collection, until Close unregisters the returned
// registration. The reads are read-only transactions (View) when the Store
// has them, bounded by gaugeTimeout.
func (p *Processor) registerGauges(m metric.Meter) (metric.Registration, error) {
	parked, err := m.Int64ObservableGauge("gcpmarketplace.entitlements.parked",
		metric.WithDescription("Entitlements parked until their account completes sign-up."), metric.WithUnit("{entitlement}"))
	if err != nil {
		return nil, err
	}
	queued, err := m.Int64ObservableGauge("gcpmarketplace.approvals.queued",
		metric.WithDescription("Requests waiting in the manual approval queue, by kind."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, gaugeTimeout)
		defer cancel()
		var (
			nParked int
			byKind  = map[ApprovalKind]int64{ApprovalEntitlement: 0, ApprovalPlanChange: 0}
		)
		err := p.read(ctx, func(ctx context.Context, tx Tx) error {
			ents, err := tx.ListEntitlements(ctx, EntitlementQuery{ParkedOnly: true})
			if err != nil {
				return err
			}
			nParked = len(ents)
			reqs, err := tx.ListApprovals(ctx)
			for _, r := range reqs {
				byKind[r.Kind]++
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("marketplace: reading the store for metrics: %w", err)
		}
		o.ObserveInt64(parked, int64(nParked))
		for k, n := range byKind {
			o.ObserveInt64(queued, n, metric.WithAttributes(attribute.String("kind", string(k))))
		}
		return nil
	}, parked, queued)
}

func (m *metrics) count(ctx context.Context, c metric.Int64Counter, eventType string) {
	c.Add(ctx, 1, metric.WithAttributes(attribute.String("event_type", eventType)))
}

func (m *metrics) finish(ctx context.Context, eventType string, o outcome, start time.Time) {
	switch o {
	case outcomeProcessed:
		m.count(ctx, m.processed, eventType)
	case outcomeDuplicate:
		m.count(ctx, m.duplicate, eventType)
	case outcomeStale:
		m.count(ctx, m.stale, eventType)
	case outcomeNotFound:
		m.count(ctx, m.notFound, eventType)
	case outcomePoison:
		m.count(ctx, m.poison, eventType)
	default:
		m.count(ctx, m.failed, eventType)
	}
	m.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
		attribute.String("event_type", eventType), attribute.String("outcome", string(o))))
}

// acked records the ack lag of a message about to be acknowledged. The
// publish time is Pub/Sub's, so the lag is measured with the processor's
// clock (Config.Clock); an unknown publish time records nothing.
func (m *metrics) acked(ctx context.Context, eventType string, published, now time.Time) {
	if published.IsZero() {
		return
	}
	m.ackLag.Record(ctx, max(now.Sub(published), 0).Seconds(), metric.WithAttributes(attribute.String("event_type", eventType)))
}
