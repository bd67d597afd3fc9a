package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// collectMetrics flattens every data point to "name attr=value ..." → value.
func collectMetrics(t *testing.T, reader *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			add := func(attrs []string, v float64) {
				k := m.Name
				for _, a := range attrs {
					k += " " + a
				}
				out[k] += v
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add(attrs(dp.Attributes.ToSlice()), float64(dp.Value))
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					add(attrs(dp.Attributes.ToSlice()), float64(dp.Value))
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					add(attrs(dp.Attributes.ToSlice()), dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(attrs(dp.Attributes.ToSlice()), float64(dp.Count))
					// Second-scale buckets: with the SDK's default ones (0, 5,
					// 10, ... meant for ms) every call fell in the first.
					require.NotEmpty(t, dp.Bounds)
					assert.Equal(t, []float64{0.001, 60}, []float64{dp.Bounds[0], dp.Bounds[len(dp.Bounds)-1]}, "%s bucket boundaries", m.Name)
				}
			}
		}
	}
	return out
}

func attrs(kvs []attribute.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = string(kv.Key) + "=" + kv.Value.String()
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	e := newEnv(t, nil, withMeterProvider(mp))
	t0 := e.clock.Now()
	paying := e.consumer(t0, time.Time{})
	broke := e.consumer(t0, time.Time{})
	e.record(paying, "requests", 5, t0, nil)
	e.record(broke, "requests", 3, t0, nil)

	got := collectMetrics(t, reader)
	assert.Equal(t, 0.0, got["gcpmarketplace.usage.windows state=pending"], "nothing sealed yet")
	assert.Equal(t, 0.0, got["gcpmarketplace.usage.oldest_unreported_age"])

	e.clock.Advance(time.Hour + 2*time.Minute) // the first window closed two minutes ago
	e.srv.SetCheckError(broke.UsageReportingID, "BILLING_DISABLED")
	e.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodServicesReport, Kind: marketplacetest.FaultStatus, Status: 503})
	e.flush()

	got = collectMetrics(t, reader)
	for k, want := range map[string]float64{
		"gcpmarketplace.servicecontrol.calls method=services.check":                      2,
		"gcpmarketplace.servicecontrol.calls method=services.report":                     1,
		"gcpmarketplace.servicecontrol.errors method=services.report status=UNAVAILABLE": 1,
		"gcpmarketplace.servicecontrol.duration method=services.check":                   2,
		"gcpmarketplace.usage.check_errors code=BILLING_DISABLED":                        1,
		"gcpmarketplace.usage.windows state=pending":                                     1, // the blocked consumer's
		"gcpmarketplace.usage.windows state=unknown":                                     1, // the report's outcome is unknown
		"gcpmarketplace.usage.windows state=expired":                                     0,
		"gcpmarketplace.usage.windows state=rejected":                                    0,
		"gcpmarketplace.usage.oldest_unreported_age":                                     120,
		"gcpmarketplace.usage.consumers.blocked":                                         1,
	} {
		assert.Equal(t, want, got[k], k)
	}

	e.srv.ClearCheckError(broke.UsageReportingID)
	e.clock.Advance(10 * time.Minute)
	e.flush()
	got = collectMetrics(t, reader)
	assert.Equal(t, 0.0, got["gcpmarketplace.usage.windows state=pending"]+got["gcpmarketplace.usage.windows state=unknown"])
	assert.Equal(t, 0.0, got["gcpmarketplace.usage.consumers.blocked"])
	assert.Equal(t, 0.0, got["gcpmarketplace.usage.oldest_unreported_age"])

	// Close unregisters the gauges: a later Reporter on the same
	// MeterProvider observes them alone.
	require.NoError(t, e.rep.Close(context.Background()))
	got = collectMetrics(t, reader)
	_, observed := got["gcpmarketplace.usage.consumers.blocked"]
	assert.False(t, observed, "gauges still observed after Close")
	e.srv.SetCheckError(broke.UsageReportingID, "BILLING_DISABLED")
	e.clock.Advance(time.Hour)
	next := e.newReporter(e.ledger, withMeterProvider(mp))
	require.NoError(t, next.Flush(context.Background()))
	got = collectMetrics(t, reader)
	assert.Equal(t, 1.0, got["gcpmarketplace.usage.consumers.blocked"], "observed once, by the new reporter")
	require.NoError(t, next.Close(context.Background()))
}
