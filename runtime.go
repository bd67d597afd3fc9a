package gcpmarketplace

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Runtime is what every component of the SDK shares: where it logs, what it
// measures with and what time it is. Build one and embed it in each
// package's Config (marketplace, procurement, usage, the verifiers), so the
// three are given once:
//
//	rt := gcpmarketplace.Runtime{Logger: logger, MeterProvider: mp}
//	client, err := procurement.NewClientWithConfig(ctx, providerID, &procurement.Config{Runtime: rt})
//	proc, err := marketplace.New(store, client, app, &marketplace.Config{Runtime: rt})
//
// The zero Runtime is valid: slog.Default(), no metrics, the wall clock.
type Runtime struct {
	// Logger receives the SDK's logs. nil means slog.Default(), read
	// when the component is built.
	Logger *slog.Logger
	// MeterProvider receives the SDK's metrics (OpenTelemetry). nil means
	// no metrics.
	MeterProvider metric.MeterProvider
	// Clock tells the time. nil means time.Now. Tests and the offline
	// emulator pass a clock they control.
	Clock func() time.Time
}

// Log returns the logger, or slog.Default() when none is set.
func (r Runtime) Log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Meter returns the named meter of the MeterProvider, or a no-op meter when
// none is set.
func (r Runtime) Meter(name string) metric.Meter {
	if r.MeterProvider != nil {
		return r.MeterProvider.Meter(name)
	}
	return noop.NewMeterProvider().Meter(name)
}

// Now returns the clock's time, or time.Now() when no clock is set.
func (r Runtime) Now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// NowFunc returns the clock as a function: Clock, or time.Now.
func (r Runtime) NowFunc() func() time.Time {
	if r.Clock != nil {
		return r.Clock
	}
	return time.Now
}
