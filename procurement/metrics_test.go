package procurement_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Calls, errors by canonical status and retries are counted per method.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	b := setup(t, procurement.Config{Runtime: gcpmarketplace.Runtime{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}})
	id := b.purchase(t, mt.PurchaseParams{}) // one approve account: get, approve, get

	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 503})
	_, err := b.client.GetEntitlement(t.Context(), id) // 503, then retried
	require.NoError(t, err)
	_, err = b.client.GetEntitlement(t.Context(), "missing")
	require.ErrorIs(t, err, procurement.ErrNotFound)
	_, err = b.client.ApproveEntitlement(t.Context(), id, nil) // get, approve, get
	require.NoError(t, err)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	got := map[string]int64{}
	durations := uint64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					key := m.Name
					for _, kv := range dp.Attributes.ToSlice() {
						key += " " + string(kv.Key) + "=" + kv.Value.AsString()
					}
					got[key] += dp.Value
				}
			case metricdata.Histogram[float64]:
				assert.Equal(t, "gcpmarketplace.procurement.duration", m.Name)
				assert.Equal(t, "s", m.Unit)
				for _, dp := range d.DataPoints {
					durations += dp.Count
					// Second-scale buckets: with the SDK's default ones (0, 5,
					// 10, ... meant for ms) every call fell in the first.
					require.NotEmpty(t, dp.Bounds)
					assert.Equal(t, []float64{0.001, 60}, []float64{dp.Bounds[0], dp.Bounds[len(dp.Bounds)-1]}, "bucket boundaries")
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"gcpmarketplace.procurement.calls method=get account":                         2,
		"gcpmarketplace.procurement.calls method=approve account":                     1,
		"gcpmarketplace.procurement.calls method=get entitlement":                     5,
		"gcpmarketplace.procurement.calls method=approve entitlement":                 1,
		"gcpmarketplace.procurement.errors method=get entitlement status=UNAVAILABLE": 1,
		"gcpmarketplace.procurement.errors method=get entitlement status=NOT_FOUND":   1,
		"gcpmarketplace.procurement.retries method=get entitlement":                   1,
	}, got)
	assert.Equal(t, uint64(9), durations)
}
