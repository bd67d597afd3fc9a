// Package telemetry holds what the SDK's packages share about their
// OpenTelemetry instruments, so that procurement, usage and marketplace
// histograms bucket alike.
package telemetry

import "go.opentelemetry.io/otel/metric"

// DurationBoundaries are the bucket boundaries, in seconds, of the SDK's
// duration histograms (API calls, event processing). The SDK's default
// boundaries (0, 5, 10, ..., 10000) suit milliseconds: a duration in
// seconds, as OpenTelemetry's semantic conventions ask for, would land in
// the first bucket whatever it is. These run from 1 ms, a fast local call,
// to 60 s, beyond the clients' own timeouts.
func DurationBoundaries() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

// LagBoundaries are the bucket boundaries, in seconds, of histograms of
// how long something waited (a message from its publication to its
// acknowledgement): DurationBoundaries, then up to an hour, because a
// message redelivered after failures or an outage waits minutes.
func LagBoundaries() []float64 {
	return append(DurationBoundaries(), 120, 300, 600, 1800, 3600)
}

// Duration is the options of a duration histogram: unit s and
// DurationBoundaries.
func Duration(description string) []metric.Float64HistogramOption {
	return []metric.Float64HistogramOption{metric.WithDescription(description), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(DurationBoundaries()...)}
}

// Lag is the options of a lag histogram: unit s and LagBoundaries.
func Lag(description string) []metric.Float64HistogramOption {
	return []metric.Float64HistogramOption{metric.WithDescription(description), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(LagBoundaries()...)}
}
