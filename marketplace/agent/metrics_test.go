package agent_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	e := newEnv(t, func(c *agent.Config) { c.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)) })
	ctx := context.Background()
	acct, order, _ := e.registered()
	require.Equal(t, http.StatusCreated, e.register(e.statement(acct, order)).status)
	require.Equal(t, http.StatusBadRequest, e.register(e.statement(acct, "no-such-order")).status)
	require.NoError(t, e.srv.Cancel(ctx, order, true))
	e.drain()
	acct2, _, _ := e.registered()
	require.NoError(t, e.srv.DeleteAccount(ctx, acct2))
	e.drain()

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, m.Name)
			for _, dp := range sum.DataPoints {
				for _, kv := range dp.Attributes.ToSlice() {
					got[m.Name+" "+kv.Value.AsString()] += dp.Value
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"gcpmarketplace.agent.registrations created":                       2,
		"gcpmarketplace.agent.registrations existing":                      1,
		"gcpmarketplace.agent.registrations unapproved_software_statement": 1,
		"gcpmarketplace.agent.revocations entitlement_ended":               2,
		"gcpmarketplace.agent.revocations account_deleted":                 1,
	}, got)
}
