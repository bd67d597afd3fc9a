package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/api/googleapi"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/apistatus"
	"github.com/gcpmarketplace/gcpmarketplace/internal/telemetry"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

const meterName = "github.com/gcpmarketplace/gcpmarketplace/usage"

// Service Control methods, the values of the method attribute.
const (
	methodCheck  = "services.check"
	methodReport = "services.report"
)

// gaugeWindowLimit caps the windows one collection of the window gauges
// reads per query: the counts saturate there, which is plenty to alert on.
const gaugeWindowLimit = 10000

// gaugeTimeout bounds the ledger reads of one collection of the gauges.
const gaugeTimeout = 5 * time.Second

type metrics struct {
	calls, errors, checkErrors metric.Int64Counter
	duration                   metric.Float64Histogram
}

// newMetrics creates the instruments (listed on Config.Runtime) from rt's
// MeterProvider: no-ops without one.
func newMetrics(rt gcpmarketplace.Runtime) (metrics, error) {
	m := rt.Meter(meterName)
	var (
		out  metrics
		errs []error
		err  error
	)
	out.calls, err = m.Int64Counter("gcpmarketplace.servicecontrol.calls",
		metric.WithDescription("Service Control calls, by method."), metric.WithUnit("{call}"))
	errs = append(errs, err)
	out.errors, err = m.Int64Counter("gcpmarketplace.servicecontrol.errors",
		metric.WithDescription("Failed Service Control calls, by method and canonical status."), metric.WithUnit("{call}"))
	errs = append(errs, err)
	out.duration, err = m.Float64Histogram("gcpmarketplace.servicecontrol.duration",
		telemetry.Duration("Time per Service Control call, by method.")...)
	errs = append(errs, err)
	out.checkErrors, err = m.Int64Counter("gcpmarketplace.usage.check_errors",
		metric.WithDescription("Check errors answered by services.check, by code."), metric.WithUnit("{error}"))
	errs = append(errs, err)
	return out, errors.Join(errs...)
}

// call records one Service Control call that started at start.
func (m *metrics) call(ctx context.Context, method string, start time.Time, err error) {
	attrs := metric.WithAttributes(attribute.String("method", method))
	m.calls.Add(ctx, 1, attrs)
	m.duration.Record(ctx, time.Since(start).Seconds(), attrs)
	if err != nil {
		m.errors.Add(ctx, 1, metric.WithAttributes(attribute.String("method", method), attribute.String("status", statusOf(err))))
	}
}

func (m *metrics) checkError(ctx context.Context, code string) {
	m.checkErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("code", code)))
}

// registerGauges observes the ledger's backlog and blocked consumers at
// each collection, until Close unregisters the returned registration.
func (r *Reporter) registerGauges(rt gcpmarketplace.Runtime) (metric.Registration, error) {
	m := rt.Meter(meterName)
	windows, err := m.Int64ObservableGauge("gcpmarketplace.usage.windows",
		metric.WithDescription("Usage windows not reported (pending, unknown, expired) or rejected, by state."), metric.WithUnit("{window}"))
	if err != nil {
		return nil, err
	}
	oldest, err := m.Float64ObservableGauge("gcpmarketplace.usage.oldest_unreported_age",
		metric.WithDescription("Time since the end of the oldest usage window not yet reported."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	blocked, err := m.Int64ObservableGauge("gcpmarketplace.usage.consumers.blocked",
		metric.WithDescription("Consumers blocked by a stop-serving check error."), metric.WithUnit("{consumer}"))
	if err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, gaugeTimeout)
		defer cancel()
		open, err := r.ledger.ListWindows(ctx, ledger.WindowQuery{
			States: []WindowState{StatePending, StateUnknown, StateExpired}, Limit: gaugeWindowLimit})
		if err != nil {
			return fmt.Errorf("usage: reading the ledger for metrics: %w", err)
		}
		rejected, err := r.ledger.ListWindows(ctx, ledger.WindowQuery{States: []WindowState{StateRejected}, Limit: gaugeWindowLimit})
		if err != nil {
			return fmt.Errorf("usage: reading the ledger for metrics: %w", err)
		}
		consumers, err := r.ledger.ListConsumers(ctx, ledger.ConsumerQuery{BlockedOnly: true})
		if err != nil {
			return fmt.Errorf("usage: reading the ledger for metrics: %w", err)
		}
		byState := map[WindowState]int64{StatePending: 0, StateUnknown: 0, StateExpired: 0, StateRejected: int64(len(rejected))}
		age := 0.0
		now := r.cfg.now()
		for i, w := range open {
			byState[w.State]++
			if i == 0 { // ordered by Start: the oldest
				age = max(now.Sub(w.End), 0).Seconds()
			}
		}
		for s, n := range byState {
			o.ObserveInt64(windows, n, metric.WithAttributes(attribute.String("state", string(s))))
		}
		o.ObserveFloat64(oldest, age)
		o.ObserveInt64(blocked, int64(len(consumers)))
		return nil
	}, windows, oldest, blocked)
}

// statusOf is the canonical status of a failed call: a closed set, fit for
// a metric attribute.
func statusOf(err error) string {
	var gerr *googleapi.Error
	switch {
	case errors.As(err, &gerr):
		var body struct {
			Error struct {
				Status string `json:"status"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(gerr.Body), &body) == nil && apistatus.Valid(body.Error.Status) {
			return body.Error.Status
		}
		return apistatus.FromHTTP(gerr.Code)
	case errors.Is(err, context.Canceled):
		return "CANCELLED"
	case errors.Is(err, context.DeadlineExceeded):
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}
