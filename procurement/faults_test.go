package procurement_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestErrorMappingFromTheWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		want      error
		retryable bool
	}{
		{400, procurement.ErrInvalidArgument, false},
		{401, procurement.ErrUnauthenticated, false},
		{403, procurement.ErrPermissionDenied, false},
		{404, procurement.ErrNotFound, false},
		{409, procurement.ErrConflict, false},
		{429, procurement.ErrRateLimited, true},
		{500, procurement.ErrInternal, true},
		{501, procurement.ErrNotImplemented, false},
		// The emulator, like Google's front end, pairs 502 with INTERNAL;
		// the body's status decides the sentinel.
		{502, procurement.ErrInternal, true},
		{503, procurement.ErrUnavailable, true},
		{504, procurement.ErrDeadlineExceeded, true},
	}
	b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 1}})
	id := b.purchase(t, mt.PurchaseParams{})
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			// Not parallel: faults are server-wide.
			b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: tt.status})
			_, err := b.client.GetEntitlement(t.Context(), id)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.retryable, procurement.IsRetryable(err))
			var apiErr *procurement.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.status, apiErr.Code)
			assert.Equal(t, procurement.MethodGetEntitlement, apiErr.Method)
			assert.Equal(t, b.client.EntitlementName(id), apiErr.Resource)
			var gerr *googleapi.Error
			require.ErrorAs(t, err, &gerr)
			assert.Equal(t, tt.status, gerr.Code)
		})
	}
}

func TestPermissionDeniedNamesThePermission(t *testing.T) {
	t.Parallel()
	b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 1}})
	ctx := t.Context()
	id := b.purchase(t, mt.PurchaseParams{})

	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultStatus, Status: 403})
	_, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "procurement: approve entitlement providers/"+b.srv.ProviderID()+"/entitlements/"+id+": permission denied (403)")
	assert.Contains(t, err.Error(), "commerceprocurement.providerEntitlements.approve")
	assert.Contains(t, err.Error(), "Producer Portal")

	accID := b.account(t, false)
	b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsGet, Kind: mt.FaultStatus, Status: 403})
	_, err = b.client.ApproveAccountSignup(ctx, accID)
	require.ErrorIs(t, err, procurement.ErrPermissionDenied)
	assert.Contains(t, err.Error(), "commerceprocurement.providerAccounts.get")

	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsList, Kind: mt.FaultStatus, Status: 401})
	_, err = b.client.ListEntitlementsPage(ctx, nil)
	require.ErrorIs(t, err, procurement.ErrUnauthenticated)
	assert.Contains(t, err.Error(), "credentials")
}

func TestReadsRetryTransientFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, mt.PurchaseParams{})
	before := b.srv.Calls(mt.MethodEntitlementsGet)

	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 503, Times: 2})
	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 500})
	e, err := b.client.GetEntitlement(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, id, e.ID)
	assert.Equal(t, before+4, b.srv.Calls(mt.MethodEntitlementsGet))
	delays := b.sleeps.Delays()
	require.Len(t, delays, 3)
	// Exponential with equal jitter: retry n waits in [d/2, d], d = 200ms·2^(n-1).
	for i, d := range delays {
		full := 200 * time.Millisecond << i
		assert.GreaterOrEqual(t, d, full/2, "retry %d", i+1)
		assert.LessOrEqual(t, d, full, "retry %d", i+1)
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultRateLimit, RetryAfter: 3 * time.Second})
	_, err := b.client.ListAccountsPage(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{3 * time.Second}, b.sleeps.Delays())
	assert.Equal(t, 2, b.srv.Calls(mt.MethodAccountsList))
}

func TestRetryBudget(t *testing.T) {
	t.Parallel()
	t.Run("max attempts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 3}})
		id := b.purchase(t, mt.PurchaseParams{})
		before := b.srv.Calls(mt.MethodEntitlementsGet)
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 503, Times: -1})
		_, err := b.client.GetEntitlement(t.Context(), id)
		require.ErrorIs(t, err, procurement.ErrUnavailable)
		assert.Equal(t, before+3, b.srv.Calls(mt.MethodEntitlementsGet))
		assert.Len(t, b.sleeps.Delays(), 2)
	})
	t.Run("max elapsed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 100, MaxElapsed: 10 * time.Second}})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultRateLimit, RetryAfter: 4 * time.Second, Times: -1})
		_, err := b.client.ListAccountsPage(t.Context(), nil)
		require.ErrorIs(t, err, procurement.ErrRateLimited)
		// 4 s + 4 s fit in 10 s; a third wait would end at 12 s.
		assert.Equal(t, []time.Duration{4 * time.Second, 4 * time.Second}, b.sleeps.Delays())
	})
	t.Run("retry-after beyond the context deadline", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultRateLimit, RetryAfter: time.Minute})
		_, err := b.client.ListAccountsPage(ctx, nil)
		require.ErrorIs(t, err, procurement.ErrRateLimited, "gives up at once instead of waiting past the deadline")
		assert.Empty(t, b.sleeps.Delays())
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		testenv.SetSleep(b.client, func(context.Context, time.Duration) error { return context.Canceled })
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultStatus, Status: 503})
		_, err := b.client.ListAccountsPage(t.Context(), nil)
		require.ErrorIs(t, err, procurement.ErrUnavailable)
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, procurement.IsRetryable(err))
	})
	t.Run("cancelled context", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := b.client.GetEntitlement(ctx, "e1")
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, b.sleeps.Delays())
	})
	t.Run("client errors are not retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.GetEntitlement(t.Context(), "missing")
		require.ErrorIs(t, err, procurement.ErrNotFound)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsGet))
		assert.Empty(t, b.sleeps.Delays())
	})
}

func TestTransportErrorsAreRetried(t *testing.T) {
	t.Parallel()
	srv := mt.New(t)
	sleeps := testenv.NewSleepRecorder(time.Time{})
	// The HTTP client gives up long before the held call returns: a real
	// transport error (*url.Error, timeout).
	httpClient := &http.Client{Transport: mt.AuthTransport(nil), Timeout: 50 * time.Millisecond}
	client := testenv.Client(t, srv, &procurement.Config{Runtime: gcpmarketplace.Runtime{Clock: sleeps.Now}},
		option.WithHTTPClient(httpClient))
	testenv.SetSleep(client, sleeps.Sleep)
	var err error
	srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultTimeout, Latency: 5 * time.Second})

	_, err = client.ListAccountsPage(t.Context(), nil)
	require.NoError(t, err)
	assert.Len(t, sleeps.Delays(), 1)
	assert.Equal(t, 2, srv.Calls(mt.MethodAccountsList))
}

// "Lost responses": the server acts, the client sees 503. Each helper must
// end in success without acting twice.
func TestLostResponses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("approve account sign-up", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.account(t, false)
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsApprove, Kind: mt.FaultLostResponse})
		res, err := b.client.ApproveAccountSignup(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.True(t, res.Account.SignupApproved())
		assert.Equal(t, 1, b.srv.Calls(mt.MethodAccountsApprove))
	})
	t.Run("approve entitlement", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultLostResponse})
		res, err := b.client.ApproveEntitlement(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsApprove))
	})
	t.Run("approve plan change", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.active(t)
		require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprovePlanChange, Kind: mt.FaultLostResponse})
		res, err := b.client.ApprovePlanChange(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, "pro", res.Entitlement.Plan)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsApprovePlanChange))
	})
	t.Run("reject entitlement", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsReject, Kind: mt.FaultLostResponse})
		res, err := b.client.RejectEntitlement(ctx, id, nil)
		require.NoError(t, err, "the entitlement is gone because this call rejected it")
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsReject))
	})
	t.Run("reject plan change", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.active(t)
		require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsRejectPlanChange, Kind: mt.FaultLostResponse})
		res, err := b.client.RejectPlanChange(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, "standard", res.Entitlement.Plan)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsRejectPlanChange))
	})
	t.Run("set message to user", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsPatch, Kind: mt.FaultLostResponse})
		e, err := b.client.SetMessageToUser(ctx, id, "hello")
		require.NoError(t, err)
		assert.Equal(t, "hello", e.MessageToUser)
		assert.Equal(t, 2, b.srv.Calls(mt.MethodEntitlementsPatch), "an idempotent patch is simply repeated")
	})
}

func TestWritesUnderTransientFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t.Run("503 before acting: approve again", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultStatus, Status: 503})
		res, err := b.client.ApproveEntitlement(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, 2, b.srv.Calls(mt.MethodEntitlementsApprove))
		assert.Len(t, b.sleeps.Delays(), 1)
	})
	t.Run("429 on approve waits Retry-After", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultRateLimit, RetryAfter: 2 * time.Second})
		res, err := b.client.ApproveEntitlement(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, []time.Duration{2 * time.Second}, b.sleeps.Delays())
		assert.Equal(t, 2, b.srv.Calls(mt.MethodEntitlementsApprove))
	})
	t.Run("lost response then 503 on the re-read", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultLostResponse})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 503, Times: 2})
		// The first get is the initial read, so the faults hit it and the
		// first re-read; both are retried.
		res, err := b.client.ApproveEntitlement(ctx, id, nil)
		require.NoError(t, err)
		assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodEntitlementsApprove))
	})
	t.Run("persistent 503 exhausts the budget", func(t *testing.T) {
		t.Parallel()
		b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 4}})
		id := b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsApprove, Kind: mt.FaultStatus, Status: 503, Times: -1})
		_, err := b.client.ApproveEntitlement(ctx, id, nil)
		require.ErrorIs(t, err, procurement.ErrUnavailable)
		assert.Contains(t, err.Error(), "approve entitlement")
		// Reads and writes share the budget of 4 attempts.
		assert.Equal(t, 2, b.srv.Calls(mt.MethodEntitlementsApprove))
	})
	t.Run("reset is not repeated after a doubtful failure", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		id := b.account(t, true)
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsReset, Kind: mt.FaultStatus, Status: 503})
		err := b.client.ResetAccount(ctx, id)
		require.ErrorIs(t, err, procurement.ErrUnavailable)
		assert.Equal(t, 1, b.srv.Calls(mt.MethodAccountsReset))
		b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsReset, Kind: mt.FaultRateLimit, RetryAfter: time.Second})
		require.NoError(t, b.client.ResetAccount(ctx, id))
		assert.Equal(t, 3, b.srv.Calls(mt.MethodAccountsReset))
	})
	t.Run("iterator yields the error", func(t *testing.T) {
		t.Parallel()
		b := setup(t, procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 1}})
		b.purchase(t, mt.PurchaseParams{})
		b.purchase(t, mt.PurchaseParams{})
		b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsList, Kind: mt.FaultStatus, Status: 500, Times: -1})
		var n int
		var last error
		for _, err := range b.client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{PageSize: 1}) {
			n++
			last = err
		}
		assert.Equal(t, 1, n)
		require.True(t, errors.Is(last, procurement.ErrInternal))
	})
}

func TestRetriesAreLogged(t *testing.T) {
	t.Parallel()
	var buf testlog.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := setup(t, procurement.Config{Runtime: gcpmarketplace.Runtime{Logger: logger}})
	b.srv.InjectFault(mt.Fault{Method: mt.MethodAccountsList, Kind: mt.FaultStatus, Status: 503})
	_, err := b.client.ListAccountsPage(t.Context(), nil)
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, `"msg":"procurement: retrying"`)
	assert.Contains(t, out, `"method":"list accounts"`)
	assert.Contains(t, out, `"resource":"providers/`+b.srv.ProviderID()+`"`)
	assert.Contains(t, out, `"attempt":1`)
}
