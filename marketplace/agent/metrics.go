package agent

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The Registry's OpenTelemetry instruments (see Config.Runtime).

const meterName = "github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"

// Registration results, the "result" attribute of
// gcpmarketplace.agent.registrations: "created", "existing", or the RFC
// 7591 error code answered.
const (
	resultCreated  = "created"
	resultExisting = "existing"
)

type metrics struct {
	registrations, revocations metric.Int64Counter
}

func newMetrics(m metric.Meter) (metrics, error) {
	var out metrics
	var err1, err2 error
	out.registrations, err1 = m.Int64Counter("gcpmarketplace.agent.registrations",
		metric.WithDescription("DCR requests, by result: created, existing, or the error code answered."),
		metric.WithUnit("{request}"))
	out.revocations, err2 = m.Int64Counter("gcpmarketplace.agent.revocations",
		metric.WithDescription("Orders whose OAuth client was revoked (entitlement ended) or purged (account deleted), by cause."),
		metric.WithUnit("{order}"))
	if err := errors.Join(err1, err2); err != nil {
		return metrics{}, fmt.Errorf("agent: metrics: %w", err)
	}
	return out, nil
}

func (m metrics) registered(ctx context.Context, result string) {
	m.registrations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
}

func (m metrics) revoked(ctx context.Context, cause string, n int) {
	if n > 0 {
		m.revocations.Add(ctx, int64(n), metric.WithAttributes(attribute.String("cause", cause)))
	}
}
