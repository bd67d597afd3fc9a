package marketplacetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	sc "google.golang.org/api/servicecontrol/v1"
)

func TestFaultStatusAndTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	entID, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	name := s.EntitlementName(entID)

	s.InjectFault(Fault{Method: MethodEntitlementsGet, Kind: FaultStatus, Status: 503, Times: 2})
	for range 2 {
		requireAPIError(t, doErr(svc.Providers.Entitlements.Get(name).Context(ctx).Do()), 503, "UNAVAILABLE")
	}
	_, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err, "the fault hit twice only")

	// Other methods are not affected; "" hits every method until cleared.
	s.InjectFault(Fault{Kind: FaultStatus, Times: -1})
	requireAPIError(t, doErr(svc.Providers.Accounts.List("providers/acme-provider").Context(ctx).Do()), 500, "INTERNAL")
	requireAPIError(t, doErr(serviceControlClient(t, s).Services.Report(s.ServiceName(), &sc.ReportRequest{}).Context(ctx).Do()), 500, "INTERNAL")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(name).Context(ctx).Do()), 500, "INTERNAL")
	s.ClearFaults()
	_, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, 5, s.Calls(MethodEntitlementsGet), "faulted calls are counted")
	assert.Equal(t, 1, s.Calls(MethodServicesReport))
	assert.Equal(t, 0, s.ReportCalls(), "the faulted report never reached Service Control")
}

func TestFaultRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := func() []bool {
		s := New(t, WithSeed(11))
		svc := procurementClient(t, s)
		s.InjectFault(Fault{Method: MethodAccountsList, Kind: FaultStatus, Status: 500, Times: -1, Rate: 0.5})
		var failed []bool
		for range 12 {
			_, err := svc.Providers.Accounts.List("providers/acme-provider").Context(ctx).Do()
			failed = append(failed, err != nil)
		}
		return failed
	}
	a := run()
	assert.Equal(t, a, run(), "seeded")
	assert.Contains(t, a, true)
	assert.Contains(t, a, false)
}

func TestFaultRateLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	s.InjectFault(Fault{Method: MethodServicesCheck, Kind: FaultRateLimit, RetryAfter: 1500 * time.Millisecond})
	gerr := requireAPIError(t, doErr(svc.Services.Check(s.ServiceName(), &sc.CheckRequest{}).Context(ctx).Do()), 429, "RESOURCE_EXHAUSTED")
	assert.Equal(t, "2", gerr.Header.Get("Retry-After"))
}

func TestFaultLatencyAndTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	name := s.EntitlementName(entID)

	s.InjectFault(Fault{Method: MethodEntitlementsGet, Kind: FaultLatency, Latency: 60 * time.Millisecond})
	t0 := time.Now()
	_, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(t0), 60*time.Millisecond)

	// A timeout the client gives up on: nothing happened.
	s.InjectFault(Fault{Method: MethodEntitlementsApprove, Kind: FaultTimeout, Latency: time.Minute})
	cctx, cancel := context.WithTimeout(ctx, 80*time.Millisecond)
	defer cancel()
	_, err = svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(cctx).Do()
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	e, _ := s.Entitlement(entID)
	assert.Equal(t, StateActivationRequested, e.State)

	// A timeout the server answers: 504 DEADLINE_EXCEEDED.
	s.InjectFault(Fault{Method: MethodEntitlementsApprove, Kind: FaultTimeout, Latency: 20 * time.Millisecond})
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 504, "DEADLINE_EXCEEDED")
	e, _ = s.Entitlement(entID)
	assert.Equal(t, StateActivationRequested, e.State)
}

func TestFaultLostResponse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	name := s.EntitlementName(entID)

	s.InjectFault(Fault{Method: MethodEntitlementsApprove, Kind: FaultLostResponse})
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 503, "UNAVAILABLE")
	e, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State, "the call acted")
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE"}, eventTypesFor(s, entID))
	// The client's retry now meets the new state.
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")

	// Service Control: the report is accepted, the answer lost; the resend
	// with the same operationId and content is deduplicated, not billed twice.
	consumer := usageConsumer(t, s)
	scs := serviceControlClient(t, s)
	op := usageOp("lost-1", consumer, s.Clock().Now(), s.ServiceName()+"/requests", 3)
	s.InjectFault(Fault{Method: MethodServicesReport, Kind: FaultLostResponse})
	requireAPIError(t, doErr(scs.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{op}}).Context(ctx).Do()), 503, "UNAVAILABLE")
	_, err = scs.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{op}}).Context(ctx).Do()
	require.NoError(t, err)
	assert.Empty(t, s.Violations())
	require.Len(t, s.Resends(), 1)
	assert.Equal(t, int64(3), s.BilledTotal(consumer, s.ServiceName()+"/requests"))
}

func TestCloseEndsSleepingFaults(t *testing.T) {
	t.Parallel()
	s := New(t)
	svc := procurementClient(t, s)
	s.InjectFault(Fault{Kind: FaultTimeout, Latency: time.Hour})
	done := make(chan error, 1)
	go func() {
		_, err := svc.Providers.Accounts.List("providers/acme-provider").Context(context.Background()).Do()
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Calls(MethodAccountsList) == 1 }, 5*time.Second, 5*time.Millisecond)
	t0 := time.Now()
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.Less(t, time.Since(t0), 5*time.Second)
	require.Error(t, <-done)
}
