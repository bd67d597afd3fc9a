package marketplace_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

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
	env := newProcEnv(t, withProc(marketplace.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		marketplace.WithLogger(logger)))
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
	histograms := 0
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
					histograms += int(dp.Count)
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
	assert.Equal(t, 6, histograms)

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
