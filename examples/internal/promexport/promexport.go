// Package promexport gives the examples one OpenTelemetry MeterProvider
// whose metrics are read in the Prometheus text format: served on /metrics
// (saas-backend) or printed (quickstart -metrics).
//
// It uses OpenTelemetry's Prometheus exporter: the SDK's instruments
// become Prometheus metrics by the exporter's standard translation (dots
// become underscores, the unit a suffix, counters end in _total):
// gcpmarketplace.events.duration (s) is gcpmarketplace_events_duration_seconds.
// To export to Cloud Monitoring or an OTLP collector instead, give
// sdkmetric.NewMeterProvider that exporter's reader; the SDK is unchanged.
package promexport

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Exporter is a MeterProvider and the Prometheus registry its metrics are
// read from.
type Exporter struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// New returns an Exporter with a registry of its own (not Prometheus's
// global one, so that several can live in one process, as in tests).
func New() (*Exporter, error) {
	reg := prometheus.NewRegistry()
	// Without scope labels: every series would otherwise carry the Go
	// package that recorded it, which the metric names already say.
	reader, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("promexport: %w", err)
	}
	return &Exporter{provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), registry: reg}, nil
}

// MeterProvider is the provider to give the SDK (procurement, usage and
// marketplace: Config.Runtime.MeterProvider).
func (e *Exporter) MeterProvider() *sdkmetric.MeterProvider { return e.provider }

// Handler serves the metrics in the Prometheus exposition format.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{})
}

// WriteText writes the metrics in the Prometheus text format.
func (e *Exporter) WriteText(w io.Writer) error {
	families, err := e.registry.Gather()
	if err != nil {
		return fmt.Errorf("promexport: gathering metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("promexport: writing metrics: %w", err)
		}
	}
	return nil
}

// Shutdown stops the MeterProvider.
func (e *Exporter) Shutdown(ctx context.Context) error { return e.provider.Shutdown(ctx) }
