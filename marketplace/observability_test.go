package marketplace_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
)

func TestMetricsAndLogs(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := newProcEnv(t, withProc(marketplace.Config{Runtime: gcpmarketplace.Runtime{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: logger}}))
	acct, _ := env.purchase(marketplacetest.PurchaseParams{})
	msgs := env.newMessages()
	for _, m := range msgs {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
		require.NoError(t, env.proc.HandleMessage(env.ctx, m)) // duplicate
	}
	env.signup(acct)
	env.drain() // ENTITLEMENT_ACTIVE: stale
	require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("bad", "{")))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	sums := map[string]int64{}
	histograms := map[string]int{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					typ, _ := dp.Attributes.Value(attribute.Key("event_type"))
					sums[m.Name+" "+typ.AsString()] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					histograms[m.Name] += int(dp.Count)
					require.NotEmpty(t, dp.Bounds)
					assert.Equal(t, 0.001, dp.Bounds[0], "%s: second-scale buckets", m.Name)
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"gcpmarketplace.events.received ACCOUNT":                         2,
		"gcpmarketplace.events.received ENTITLEMENT_CREATION_REQUESTED":  2,
		"gcpmarketplace.events.received ENTITLEMENT_ACTIVE":              1,
		"gcpmarketplace.events.received UNDECODABLE":                     1,
		"gcpmarketplace.events.processed ACCOUNT":                        1,
		"gcpmarketplace.events.processed ENTITLEMENT_CREATION_REQUESTED": 1,
		"gcpmarketplace.events.duplicate ACCOUNT":                        1,
		"gcpmarketplace.events.duplicate ENTITLEMENT_CREATION_REQUESTED": 1,
		"gcpmarketplace.events.stale ENTITLEMENT_ACTIVE":                 1,
		"gcpmarketplace.events.poison UNDECODABLE":                       1,
	}, sums)
	// Every message is timed; the acknowledged ones with a publish time
	// (all but the undecodable one, built without) have an ack lag.
	assert.Equal(t, map[string]int{"gcpmarketplace.events.duration": 6, "gcpmarketplace.events.ack_lag": 5}, histograms)

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	assert.Contains(t, out, `"event_id":"ENTITLEMENT_CREATION_REQUESTED-`)
	assert.Contains(t, out, `"account_id":"`+acct)
	assert.Contains(t, out, `"entitlement_id":"`)
	assert.Contains(t, out, `"event_type":"ENTITLEMENT_CREATION_REQUESTED"`)
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// lockingStore is a Store that implements KeyLocker and checks that the
// processor holds the key lock around its work.
type lockingStore struct {
	*memstore.Store
	mu     sync.Mutex
	held   map[string]bool
	locked int
}

func (s *lockingStore) LockKey(_ context.Context, key string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[key] {
		panic("KeyLocker: " + key + " locked twice")
	}
	s.held[key] = true
	s.locked++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.held, key)
	}, nil
}

func TestKeyLockerStoreIsUsed(t *testing.T) {
	t.Parallel()
	store := &lockingStore{Store: memstore.New(), held: map[string]bool{}}
	env := newProcEnv(t, withStore(store))
	acct, _ := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()
	env.signup(acct)
	env.drain()
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.GreaterOrEqual(t, store.locked, 4)
	assert.Empty(t, store.held, "every lock released")
}

// collect reads every metric: name → data.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// gaugeValues maps the value of attribute key (or "" without it) to each
// point's value.
func gaugeValues(t *testing.T, data metricdata.Aggregation, key string) map[string]int64 {
	t.Helper()
	g, ok := data.(metricdata.Gauge[int64])
	require.True(t, ok, "int64 gauge, got %T", data)
	out := map[string]int64{}
	for _, dp := range g.DataPoints {
		v, _ := dp.Attributes.Value(attribute.Key(key))
		out[v.AsString()] = dp.Value
	}
	return out
}

func TestMetricsGaugesAndAckLag(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	env := newProcEnv(t, withProc(marketplace.Config{Runtime: gcpmarketplace.Runtime{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}, Policy: marketplace.ManualApproval("soon")}))
	acct1, _ := env.purchase(marketplacetest.PurchaseParams{})
	env.purchase(marketplacetest.PurchaseParams{})
	msgs := env.newMessages()
	env.srv.Clock().Advance(3 * time.Second) // delivered 3 s after publication
	for _, m := range msgs {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	}

	got := collect(t, reader)
	assert.Equal(t, map[string]int64{"": 2}, gaugeValues(t, got["gcpmarketplace.entitlements.parked"], ""))
	assert.Equal(t, map[string]int64{"entitlement": 0, "plan_change": 0}, gaugeValues(t, got["gcpmarketplace.approvals.queued"], "kind"))

	env.signup(acct1) // its entitlement leaves the parking for the approval queue
	env.drain()
	got = collect(t, reader)
	assert.Equal(t, map[string]int64{"": 1}, gaugeValues(t, got["gcpmarketplace.entitlements.parked"], ""))
	assert.Equal(t, map[string]int64{"entitlement": 1, "plan_change": 0}, gaugeValues(t, got["gcpmarketplace.approvals.queued"], "kind"))

	lag, ok := got["gcpmarketplace.events.ack_lag"].(metricdata.Histogram[float64])
	require.True(t, ok)
	var n uint64
	for _, dp := range lag.DataPoints {
		typ, _ := dp.Attributes.Value("event_type")
		if typ.AsString() == string(events.TypeEntitlementCreationRequested) {
			assert.Equal(t, uint64(2), dp.Count)
			assert.InDelta(t, 6.0, dp.Sum, 0.001, "3 s each")
			// Second-scale buckets: with the SDK's default ones (0, 5, 10,
			// ... meant for ms) 3 s fell in the first, with 0.1 s and 4 s.
			i := slices.Index(dp.Bounds, 5.0)
			require.Positive(t, i, "bounds %v", dp.Bounds)
			assert.Equal(t, 2.5, dp.Bounds[i-1])
			assert.Equal(t, uint64(2), dp.BucketCounts[i], "3 s is in (2.5, 5]")
		}
		n += dp.Count
	}
	assert.GreaterOrEqual(t, n, uint64(len(msgs)))
}

// A pushed message about an entitlement the Procurement API answers 404
// for, and unknown here, is acknowledged (204) without effect, but logged
// with its ids and counted (issue 19, item 8: it was silent).
func TestPushNotFoundLoggedAndCounted(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	logs := &testlog.Buffer{}
	env := newProcEnv(t, withProc(marketplace.Config{Runtime: gcpmarketplace.Runtime{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: slog.New(slog.NewJSONHandler(logs, nil))}}))
	url := pushEndpoint(t, env)
	data := []byte(`{"eventId":"ev-404","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"no-such-entitlement"}}`)
	resp, err := env.srv.Push(env.ctx, url, marketplacetest.PushParams{Data: data, Audience: url})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)

	out := logs.String()
	assert.Contains(t, out, `"msg":"marketplace: entitlement not found at the Procurement API nor locally; acknowledged without effect"`)
	assert.Contains(t, out, `"event_id":"ev-404"`)
	assert.Contains(t, out, `"entitlement_id":"no-such-entitlement"`)
	assert.Contains(t, out, `"level":"INFO"`)

	got := collect(t, reader)
	sum, ok := got["gcpmarketplace.events.not_found"].(metricdata.Sum[int64])
	require.True(t, ok, "not_found counter: %T", got["gcpmarketplace.events.not_found"])
	require.Len(t, sum.DataPoints, 1)
	assert.Equal(t, int64(1), sum.DataPoints[0].Value)
	typ, _ := sum.DataPoints[0].Attributes.Value("event_type")
	assert.Equal(t, "ENTITLEMENT_ACTIVE", typ.AsString())
}
