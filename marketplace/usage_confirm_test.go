package marketplace_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// lateCancel is a usage-based customer served by a real Processor wired to
// a real Reporter, both on the emulator's clock, for the late-cancellation
// scenarios of issue 22.
type lateCancel struct {
	*procEnv
	rep    *usage.Reporter
	ent    string
	urid   string
	hour   time.Time // 10:00 of the scenario's day
	alerts []usage.BilledAfterEnd
	mu     sync.Mutex
}

func newLateCancel(t *testing.T, confirmer usage.EndConfirmer) *lateCancel {
	env := newProcEnv(t)
	lc := &lateCancel{procEnv: env}
	store := env.store.(*memstore.Store)
	rep, err := usage.New(env.ctx, env.srv.ServiceName(), store, &usage.Config{
		Runtime:      gcpmarketplace.Runtime{Clock: env.srv.Clock().Now},
		Metrics:      map[string]usage.MetricKind{"requests": usage.Int64},
		EndConfirmer: confirmer,
		OnBilledAfterEnd: func(_ context.Context, a usage.BilledAfterEnd) {
			lc.mu.Lock()
			defer lc.mu.Unlock()
			lc.alerts = append(lc.alerts, a)
		},
	}, env.srv.ClientOptions()...)
	require.NoError(t, err)
	proc, err := marketplace.New(store, env.client, env.rec.handler(),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: env.srv.Clock().Now}, Usage: rep})
	require.NoError(t, err)
	env.proc, lc.rep = proc, rep

	lc.hour = env.srv.Clock().Now().UTC().Truncate(24 * time.Hour).Add(34 * time.Hour) // 10:00 tomorrow
	lc.at(0)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{UsageBased: true})
	env.drain()
	env.signup(acct)
	env.drain()
	e, ok := env.srv.Entitlement(ent)
	require.True(t, ok)
	lc.ent, lc.urid = ent, e.UsageReportingID
	return lc
}

// at sets the emulator's clock to the scenario's 10:00 plus d.
func (lc *lateCancel) at(d time.Duration) {
	lc.t.Helper()
	require.NoError(lc.t, lc.srv.Clock().Set(lc.hour.Add(d)))
}

func (lc *lateCancel) record(n int64) {
	lc.t.Helper()
	require.NoError(lc.t, lc.rep.Record(lc.ctx, usage.Record{EntitlementID: lc.ent, Metric: "requests", Int64: n}))
}

func (lc *lateCancel) flush() {
	lc.t.Helper()
	require.NoError(lc.t, lc.rep.Flush(lc.ctx))
}

// requireBilled asserts what the emulator's Service Control billed and that
// its double-billing detector is silent.
func (lc *lateCancel) requireBilled(want int64) {
	lc.t.Helper()
	require.Equal(lc.t, want, lc.srv.BilledTotal(lc.urid, lc.srv.ServiceName()+"/requests"))
	require.Empty(lc.t, lc.srv.Violations())
	lc.mu.Lock()
	defer lc.mu.Unlock()
	require.Empty(lc.t, lc.alerts, "nothing was billed after the end")
}

func (lc *lateCancel) requireCancelledOnce() {
	lc.t.Helper()
	n := 0
	for _, typ := range lc.rec.types(lc.ent) {
		if typ == events.TypeEntitlementCancelled {
			n++
		}
	}
	require.Equal(lc.t, 1, n, "OnEntitlementCancelled once")
}

// Issue 22: the customer cancels at 10:58:00; a 3.5-minute Procurement
// outage (entitlements.get answers 503) delays the processing of
// ENTITLEMENT_CANCELLED; 400 units recorded at 10:59:30 are accepted; the
// flush at 11:01:30 must not seal [10:00, 11:00) blind. Billed: 10.
func TestLateCancellationDuringProcurementOutage(t *testing.T) {
	t.Parallel()
	lc := newLateCancel(t, nil)
	lc.at(10 * time.Minute)
	lc.record(10)

	lc.at(58 * time.Minute)
	require.NoError(t, lc.srv.Cancel(lc.ctx, lc.ent, true))
	lc.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsGet, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	msgs := lc.newMessages()
	require.NotEmpty(t, msgs)
	for _, m := range msgs {
		require.Error(t, lc.proc.HandleMessage(lc.ctx, m), "the outage fails the message; Pub/Sub redelivers it")
	}

	lc.at(59*time.Minute + 30*time.Second)
	lc.record(400)

	lc.at(61*time.Minute + 30*time.Second)
	lc.flush()

	// The outage ends; Pub/Sub redelivers the cancellation.
	lc.srv.ClearFaults()
	for _, m := range msgs {
		require.NoError(t, lc.proc.HandleMessage(lc.ctx, m))
	}
	lc.drain()
	lc.at(62*time.Minute + 30*time.Second)
	lc.flush()
	lc.flush()

	lc.requireBilled(10)
	lc.requireCancelledOnce()
}

// Issue 22: the processor is stopped: the customer cancels at 10:20, 400
// units are recorded at 10:30, the reporter flushes at 11:02, and the
// cancellation is processed only after that. Billed: 10.
func TestLateCancellationWhileProcessorStopped(t *testing.T) {
	t.Parallel()
	lc := newLateCancel(t, nil)
	lc.at(10 * time.Minute)
	lc.record(10)

	lc.at(20 * time.Minute)
	require.NoError(t, lc.srv.Cancel(lc.ctx, lc.ent, true))
	lc.at(30 * time.Minute)
	lc.record(400)

	lc.at(62 * time.Minute)
	lc.flush()
	lc.flush()

	lc.drain() // the processor starts again
	lc.at(63 * time.Minute)
	lc.flush()

	lc.requireBilled(10)
	lc.requireCancelledOnce()
}

// blindConfirmer confirms every entitlement live: it stands for a
// Procurement read that has not caught up, leaving the processor's hold as
// the only protection.
type blindConfirmer struct{}

func (blindConfirmer) ConfirmEnds(context.Context, []string) (map[string]time.Time, error) {
	return map[string]time.Time{}, nil
}

// While a message about an entitlement is unsettled (it failed and awaits
// redelivery), the reporter does not seal the entitlement's window, even
// when its confirmation says the entitlement is live.
func TestUnsettledMessageHoldsWindow(t *testing.T) {
	t.Parallel()
	lc := newLateCancel(t, blindConfirmer{})
	lc.at(10 * time.Minute)
	lc.record(10)
	lc.at(58 * time.Minute)
	require.NoError(t, lc.srv.Cancel(lc.ctx, lc.ent, true))
	lc.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsGet, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	msgs := lc.newMessages()
	for _, m := range msgs {
		require.Error(t, lc.proc.HandleMessage(lc.ctx, m))
	}
	lc.at(59*time.Minute + 30*time.Second)
	lc.record(400)
	lc.at(61*time.Minute + 30*time.Second)
	lc.flush()
	ws, err := lc.store.(*memstore.Store).ListWindows(lc.ctx, ledger.WindowQuery{EntitlementID: lc.ent})
	require.NoError(t, err)
	require.Empty(t, ws, "held while the cancellation awaits redelivery")

	lc.srv.ClearFaults()
	for _, m := range msgs {
		require.NoError(t, lc.proc.HandleMessage(lc.ctx, m))
	}
	lc.at(62*time.Minute + 30*time.Second)
	lc.flush()
	lc.flush()
	lc.requireBilled(10)
	lc.requireCancelledOnce()
}
