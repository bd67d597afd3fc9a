package usage_test

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// configFunc changes a test's usage.Config; the helpers below name the
// changes the tests make.
type configFunc = func(*usage.Config)

func withMetric(name string, kind usage.MetricKind) configFunc {
	return func(c *usage.Config) {
		if c.Metrics == nil {
			c.Metrics = map[string]usage.MetricKind{}
		}
		c.Metrics[name] = kind
	}
}

func withClock(now func() time.Time) configFunc { return func(c *usage.Config) { c.Clock = now } }
func withWindow(d time.Duration) configFunc     { return func(c *usage.Config) { c.Window = d } }
func withRPCTimeout(d time.Duration) configFunc { return func(c *usage.Config) { c.RPCTimeout = d } }
func withLease(d time.Duration) configFunc      { return func(c *usage.Config) { c.Lease = d } }
func withOwner(id string) configFunc            { return func(c *usage.Config) { c.Owner = id } }
func withConcurrency(n int) configFunc          { return func(c *usage.Config) { c.Concurrency = n } }
func withMaxRequestBytes(n int) configFunc      { return func(c *usage.Config) { c.MaxRequestBytes = n } }
func withMaxChecksPerFlush(n int) configFunc {
	return func(c *usage.Config) { c.MaxChecksPerFlush = n }
}
func withCheckCacheTTL(d time.Duration) configFunc {
	return func(c *usage.Config) { c.CheckCacheTTL = d }
}

func withSource(src usage.Source, metrics ...string) configFunc {
	return func(c *usage.Config) { c.Source, c.SourceMetrics = src, metrics }
}

func withEndConfirmer(ec usage.EndConfirmer) configFunc {
	return func(c *usage.Config) { c.EndConfirmer = ec }
}

func withServingChanged(fn func(context.Context, usage.ServingChange)) configFunc {
	return func(c *usage.Config) { c.OnServingChange = fn }
}

func withDeadlineAlert(margin time.Duration, fn func(context.Context, usage.DeadlineAlert)) configFunc {
	return func(c *usage.Config) { c.DeadlineAlertMargin, c.OnDeadlineAlert = margin, fn }
}

func withBilledAfterEnd(fn func(context.Context, usage.BilledAfterEnd)) configFunc {
	return func(c *usage.Config) { c.OnBilledAfterEnd = fn }
}

// configOf applies fs to a fresh Config.
func configOf(fs ...configFunc) *usage.Config {
	c := &usage.Config{}
	for _, f := range fs {
		f(c)
	}
	return c
}

// The defaults and limits the tests rely on (see the fields of Config and
// ReadBackQuery.Limit).
const (
	defaultLease         = 5 * time.Minute
	defaultCheckCacheTTL = 60 * time.Second
	maxReadBackLimit     = 10000
)

func withMeterProvider(mp metric.MeterProvider) configFunc {
	return func(c *usage.Config) { c.MeterProvider = mp }
}
