package procurement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/internal/telemetry"
)

const meterName = "github.com/gcpmarketplace/gcpmarketplace/procurement"

type metrics struct {
	calls, errors, retries metric.Int64Counter
	duration               metric.Float64Histogram
}

// newMetrics creates the client's instruments (listed on Config.Runtime)
// from m.
func newMetrics(m metric.Meter) (metrics, error) {
	var (
		out  metrics
		errs []error
		err  error
	)
	out.calls, err = m.Int64Counter("gcpmarketplace.procurement.calls",
		metric.WithDescription("Procurement API calls (HTTP attempts, retries included), by method."), metric.WithUnit("{call}"))
	errs = append(errs, err)
	out.errors, err = m.Int64Counter("gcpmarketplace.procurement.errors",
		metric.WithDescription("Failed Procurement API calls, by method and canonical status."), metric.WithUnit("{call}"))
	errs = append(errs, err)
	out.retries, err = m.Int64Counter("gcpmarketplace.procurement.retries",
		metric.WithDescription("Procurement API calls retried after a retryable failure, by method."), metric.WithUnit("{retry}"))
	errs = append(errs, err)
	out.duration, err = m.Float64Histogram("gcpmarketplace.procurement.duration",
		telemetry.Duration("Time per Procurement API call, by method.")...)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return metrics{}, fmt.Errorf("procurement: creating metrics: %w", err)
	}
	return out, nil
}

// attempt records one HTTP attempt that started at start and ended with
// err (already converted by apiErr).
func (m *metrics) attempt(ctx context.Context, method Method, start time.Time, err error) {
	attrs := metric.WithAttributes(attribute.String("method", string(method)))
	m.calls.Add(ctx, 1, attrs)
	m.duration.Record(ctx, time.Since(start).Seconds(), attrs)
	if err != nil {
		m.errors.Add(ctx, 1, metric.WithAttributes(attribute.String("method", string(method)),
			attribute.String("status", statusOf(err))))
	}
}

func (m *metrics) retry(ctx context.Context, method Method) {
	m.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("method", string(method))))
}

// statusOf is the canonical status of a failed call: a closed set, fit for
// a metric attribute.
func statusOf(err error) string {
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status != "":
		return apiErr.Status
	case errors.Is(err, context.Canceled):
		return "CANCELLED"
	case errors.Is(err, context.DeadlineExceeded):
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}
