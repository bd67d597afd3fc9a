package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// Findings: SDK defects the fault suite ran into, each reduced to a short
// deterministic scenario (no faults but the one named, no randomness).
// Each failed until the SDK was fixed and now guards against a regression.

// quiet is an env with nothing random: faults off, no restarts.
func quiet(t *testing.T) *env {
	return newEnv(t, config{seed: 1, workers: 2, step: 20 * time.Minute})
}

// Config.Usage (formerly WithUsageReporter) says usage-based entitlements are registered "when they
// become usable", and the package documentation that "usage is accepted
// once they are usable". An entitlement bought before its account signed
// up is parked in ENTITLEMENT_ACTIVATION_REQUESTED: not approved, never
// provisioned. Yet the processor registers it (registerUsage runs for any
// state) and Record accepts its usage, which would be reported and billed
// to a customer the vendor never provisioned; its hourly zero operations are
// reported too, also after it is aborted.
func TestFindingUsageAcceptedBeforeActivation(t *testing.T) {
	t.Parallel()
	e := quiet(t)
	id, err := e.srv.Purchase(e.ctx, mt.PurchaseParams{UsageBased: true, OfferDuration: "P1M"})
	require.NoError(t, err)
	e.drain(0, true)
	x, _ := e.srv.Entitlement(id)
	require.Equal(t, mt.StateActivationRequested, x.State, "parked: the account has not signed up")

	e.clock.Advance(time.Minute)
	err = e.rep.Record(e.ctx, usage.Record{EntitlementID: id, Metric: metricRequests, Int64: 7})
	assert.ErrorIs(t, err, usage.ErrUnknownConsumer,
		"usage of an entitlement that was never approved must be refused (it is not usable)")
}

// A cancelled consumer's final window [start of the hour, End) was sealed
// at the next window boundary plus the grace, but its reporting deadline is
// End + 1 h (usage.Deadline). For a cancellation early in an hour the window
// was first sent after its own deadline; if that one call's outcome was
// unknown (a 500, a timeout, a lost response), the next flush marked it
// Expired and it was never resent on its own: the usage was not billed
// unless an operator stepped in. With a cancellation at 09:00:30, the window
// [09:00, 09:00:30) has its deadline at 10:00:30 and was sealed and sent at
// 10:01. It is now sealed once End plus the grace has passed (issue 8), so
// a failed first call is resent well within the deadline.
func TestFindingFinalWindowSealedAfterItsDeadline(t *testing.T) {
	t.Parallel()
	e := quiet(t)
	id, err := e.srv.Purchase(e.ctx, mt.PurchaseParams{UsageBased: true, OfferDuration: "P1M"})
	require.NoError(t, err)
	x, _ := e.srv.Entitlement(id)
	e.drain(0, true)
	_, err = e.proc.CompleteSignup(e.ctx, marketplace.SignupParams{AccountID: x.AccountID, VendorUserID: "tenant-1"})
	require.NoError(t, err)
	e.drain(1, true)

	e.clock.Advance(10 * time.Second)
	require.NoError(t, e.rep.Record(e.ctx, usage.Record{EntitlementID: id, Metric: metricRequests, Int64: 5}))
	e.clock.Advance(20 * time.Second) // 09:00:30
	require.NoError(t, e.srv.Cancel(e.ctx, id, true))
	e.drain(2, true)

	// Run's cadence: a flush every minute, for 90 minutes. The first report
	// call, the one that first sends the final window whenever it is
	// sealed, fails with a 500.
	require.Zero(t, e.srv.Calls(mt.MethodServicesReport), "nothing reported before the final window")
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultStatus, Status: 500})
	for range 90 {
		e.clock.Advance(time.Minute)
		require.NoError(t, e.rep.Flush(e.ctx))
	}
	assert.GreaterOrEqual(t, e.srv.Calls(mt.MethodServicesReport), 2, "the failed call and its resend")
	billed := e.srv.BilledTotal(x.UsageReportingID, e.srv.ServiceName()+"/"+metricRequests)
	backlog, err := e.rep.Backlog(e.ctx)
	require.NoError(t, err)
	for _, w := range backlog {
		t.Logf("window [%v, %v) deadline %v sealed %v: %s: %s", w.Start, w.End, w.Deadline, w.SealedAt, w.State, w.Reason)
	}
	assert.Equal(t, int64(5), billed, "5 units recorded before the cancellation: billed %d", billed)
	assert.Len(t, backlog, 0, "a single failed call must not leave usage to an operator")
	ws, err := e.db.ListWindows(e.ctx, ledger.WindowQuery{EntitlementID: id})
	require.NoError(t, err)
	require.Len(t, ws, 1, "one final window")
	w := ws[0]
	assert.Equal(t, usage.StateReported, w.State)
	assert.True(t, w.ReportedAt.Before(w.Deadline), "reported at %v, deadline %v", w.ReportedAt, w.Deadline)
	assert.LessOrEqual(t, w.SealedAt.Sub(w.End), 2*time.Minute, "sealed at %v, End %v", w.SealedAt, w.End)
}
