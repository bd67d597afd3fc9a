package procurement

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
)

func googleErr(code int, status, message string) *googleapi.Error {
	body := fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q}}`, code, message, status)
	if status == "" {
		body = fmt.Sprintf(`{"error":{"code":%d,"message":%q}}`, code, message)
	}
	return &googleapi.Error{Code: code, Message: message, Body: body, Header: http.Header{}}
}

func TestAPIErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      int
		status    string
		message   string
		want      error
		retryable bool
	}{
		{400, "INVALID_ARGUMENT", "bad filter", ErrInvalidArgument, false},
		{400, "FAILED_PRECONDITION", "Precondition check failed.", ErrFailedPrecondition, false},
		{400, "", "Precondition check failed.", ErrFailedPrecondition, false},
		{400, "", "something", ErrInvalidArgument, false},
		{401, "UNAUTHENTICATED", "no", ErrUnauthenticated, false},
		{403, "PERMISSION_DENIED", "denied", ErrPermissionDenied, false},
		{404, "NOT_FOUND", "gone", ErrNotFound, false},
		{404, "", "", ErrNotFound, false},
		{409, "ABORTED", "race", ErrConflict, false},
		{409, "ALREADY_EXISTS", "dup", ErrConflict, false},
		{429, "RESOURCE_EXHAUSTED", "slow down", ErrRateLimited, true},
		{500, "INTERNAL", "oops", ErrInternal, true},
		{500, "UNKNOWN", "oops", ErrInternal, true},
		{501, "UNIMPLEMENTED", "not yet", ErrNotImplemented, false},
		{502, "", "", ErrUnavailable, true},
		{503, "UNAVAILABLE", "later", ErrUnavailable, true},
		{504, "DEADLINE_EXCEEDED", "slow", ErrDeadlineExceeded, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s_%s", tt.code, tt.status, tt.message), func(t *testing.T) {
			t.Parallel()
			g := googleErr(tt.code, tt.status, tt.message)
			err := newAPIError(MethodApproveEntitlement, "providers/p/entitlements/e", g, time.Now)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.retryable, IsRetryable(err))
			var gerr *googleapi.Error
			require.ErrorAs(t, err, &gerr, "the generated client's error stays reachable")
			assert.Same(t, g, gerr)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.code, apiErr.Code)
			assert.Contains(t, err.Error(), "procurement: approve entitlement providers/p/entitlements/e: ")
			for _, other := range []error{ErrNotFound, ErrFailedPrecondition, ErrInvalidArgument, ErrUnavailable, ErrRateLimited} {
				if other != tt.want {
					assert.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestAPIErrorMessage(t *testing.T) {
	t.Parallel()
	err := newAPIError(MethodApproveEntitlement, "providers/p/entitlements/e",
		googleErr(400, "FAILED_PRECONDITION", "Precondition check failed."), time.Now)
	assert.Equal(t, "procurement: approve entitlement providers/p/entitlements/e: failed precondition (400): Precondition check failed.", err.Error())

	err = newAPIError(MethodApprovePlanChange, "providers/p/entitlements/e", googleErr(403, "PERMISSION_DENIED", "denied"), time.Now)
	assert.Contains(t, err.Error(), "commerceprocurement.providerEntitlements.approve")
	assert.Contains(t, err.Error(), "Producer Portal")

	err = newAPIError(MethodGetAccount, "providers/p/accounts/a", googleErr(403, "PERMISSION_DENIED", "denied"), time.Now)
	assert.Contains(t, err.Error(), "commerceprocurement.providerAccounts.get")

	long := strings.Repeat("é", 500)
	err = newAPIError(MethodGetAccount, "r", googleErr(500, "INTERNAL", long), time.Now)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.LessOrEqual(t, len(apiErr.Message), maxMessage+len("…"))
	assert.True(t, strings.HasSuffix(apiErr.Message, "…"))

	// A non-JSON body (a proxy's HTML page) keeps a short prefix.
	err = newAPIError(MethodGetAccount, "r", &googleapi.Error{Code: 502, Body: "Bad gateway from proxy"}, time.Now)
	assert.Contains(t, err.Error(), "unavailable (502): Bad gateway from proxy")

	// Errors that are not googleapi errors pass through.
	plain := errors.New("plain")
	assert.Same(t, plain, newAPIError(MethodGetAccount, "r", plain, time.Now))
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	assert.Equal(t, 7*time.Second, parseRetryAfter("7", clock))
	assert.Equal(t, time.Duration(0), parseRetryAfter("", clock))
	assert.Equal(t, time.Duration(0), parseRetryAfter("-3", clock))
	assert.Equal(t, time.Duration(0), parseRetryAfter("soon", clock))
	assert.Equal(t, time.Hour, parseRetryAfter("999999", clock))
	assert.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), clock))
	assert.Equal(t, time.Duration(0), parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), clock))

	g := googleErr(429, "RESOURCE_EXHAUSTED", "slow")
	g.Header.Set("Retry-After", "3")
	var apiErr *APIError
	require.ErrorAs(t, newAPIError(MethodGetAccount, "r", g, clock), &apiErr)
	assert.Equal(t, 3*time.Second, apiErr.RetryAfter)
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	assert.False(t, IsRetryable(nil))
	assert.False(t, IsRetryable(context.Canceled))
	assert.False(t, IsRetryable(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	assert.True(t, IsRetryable(&url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection reset by peer")}))
	assert.False(t, IsRetryable(&url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}))
	assert.True(t, IsRetryable(googleErr(503, "", "")), "a bare googleapi.Error")
	assert.False(t, IsRetryable(errors.New("other")))
	assert.False(t, IsRetryable(&StateError{}))
}

func TestSentinelTypes(t *testing.T) {
	t.Parallel()
	se := &StateError{Method: MethodApproveEntitlement, Resource: "providers/p/entitlements/e", State: "ENTITLEMENT_CANCELLED", Detail: "d"}
	assert.ErrorIs(t, se, ErrWrongState)
	assert.ErrorIs(t, se, ErrFailedPrecondition)
	assert.Equal(t, "procurement: approve entitlement providers/p/entitlements/e: resource is ENTITLEMENT_CANCELLED: d", se.Error())
	pm := &PlanMismatchError{Method: MethodApprovePlanChange, Resource: "r", Expected: "a", Actual: "b"}
	assert.ErrorIs(t, pm, ErrPlanMismatch)
	assert.NotErrorIs(t, pm, ErrFailedPrecondition)
}

func TestStatusWithoutBodyStatus(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]error{
		400: ErrInvalidArgument, 401: ErrUnauthenticated, 403: ErrPermissionDenied, 404: ErrNotFound,
		409: ErrConflict, 429: ErrRateLimited, 499: ErrCanceled, 500: ErrInternal, 501: ErrNotImplemented,
		502: ErrUnavailable, 503: ErrUnavailable, 504: ErrDeadlineExceeded, 507: ErrInternal,
	} {
		err := newAPIError(MethodGetEntitlement, "r", &googleapi.Error{Code: code, Body: "{}"}, time.Now)
		assert.ErrorIs(t, err, want, "%d", code)
	}
	err := newAPIError(MethodGetEntitlement, "r", &googleapi.Error{Code: 418}, time.Now)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "UNKNOWN", apiErr.Status)
	assert.False(t, apiErr.Is(nil))
}

func TestPlanMismatchMessage(t *testing.T) {
	t.Parallel()
	pm := &PlanMismatchError{Method: MethodApprovePlanChange, Resource: "providers/p/entitlements/e", Expected: "pro", Actual: "enterprise"}
	assert.Equal(t, `procurement: approve plan change providers/p/entitlements/e: pending plan is "enterprise", expected "pro"; nothing was changed`, pm.Error())
}

func TestSleepContext(t *testing.T) {
	t.Parallel()
	require.NoError(t, sleepContext(t.Context(), time.Millisecond))
	require.NoError(t, sleepContext(t.Context(), 0))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, sleepContext(ctx, time.Hour), context.Canceled)
	require.ErrorIs(t, sleepContext(ctx, 0), context.Canceled)
}
