package procurement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/googleapi"

	"github.com/gcpmarketplace/gcpmarketplace/internal/apistatus"
)

// Sentinel errors, one per canonical status the Procurement API returns.
// Every error returned for an API failure is an *APIError that matches
// exactly one of these with errors.Is (or none, for an unmapped status).
var (
	// ErrInvalidArgument: 400 INVALID_ARGUMENT, the request is malformed
	// (for example a bad filter, or a missing approvalName where several
	// approvals exist).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: 400 FAILED_PRECONDITION ("Precondition check
	// failed."), the resource is not in the state the method requires, for
	// example approving an entitlement before its account's sign-up.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnauthenticated: 401 UNAUTHENTICATED, no or invalid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: 403 PERMISSION_DENIED. The caller lacks an IAM
	// permission, or its service account is not linked in Producer Portal.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotFound: 404 NOT_FOUND. Entitlements are deleted some time after
	// cancellation, and rejected entitlements are removed.
	ErrNotFound = errors.New("not found")
	// ErrConflict: 409 ABORTED or ALREADY_EXISTS, a concurrent change won.
	ErrConflict = errors.New("conflict")
	// ErrRateLimited: 429 RESOURCE_EXHAUSTED, a rate limit or quota.
	ErrRateLimited = errors.New("rate limited")
	// ErrCanceled: 499 CANCELLED, the request was cancelled by the client.
	ErrCanceled = errors.New("cancelled")
	// ErrInternal: 500 INTERNAL or UNKNOWN.
	ErrInternal = errors.New("internal error")
	// ErrNotImplemented: 501 UNIMPLEMENTED. Suspend is documented as "not yet
	// supported".
	ErrNotImplemented = errors.New("not implemented")
	// ErrUnavailable: 502, 503 UNAVAILABLE.
	ErrUnavailable = errors.New("unavailable")
	// ErrDeadlineExceeded: 504 DEADLINE_EXCEEDED on the server side.
	ErrDeadlineExceeded = errors.New("deadline exceeded")
)

// Errors reported by this package before or instead of an API call.
var (
	// ErrReasonTooLong is returned, before any call is made, when a reason is
	// longer than the 256 bytes the API keeps. The API would silently
	// truncate it; this package refuses instead.
	ErrReasonTooLong = errors.New("reason longer than 256 bytes")
	// ErrInvalidName is returned when an id or resource name is empty, has the
	// wrong shape, or names another provider.
	ErrInvalidName = errors.New("invalid id or resource name")
	// ErrMalformedResponse is returned when the API answers with something
	// this package cannot convert, such as an unparseable timestamp.
	ErrMalformedResponse = errors.New("malformed response")
	// ErrSignupNotApproved is matched (together with ErrFailedPrecondition)
	// when an entitlement cannot be approved because its account's "signup"
	// approval is not APPROVED yet.
	ErrSignupNotApproved = errors.New("account sign-up not approved")
	// ErrPlanMismatch is returned by ApprovePlanChange and RejectPlanChange
	// when the caller's expected plan differs from the entitlement's current
	// pending plan. Nothing was approved or rejected.
	ErrPlanMismatch = errors.New("pending plan differs from the expected plan")
	// ErrWrongState is matched (together with ErrFailedPrecondition) by a
	// *StateError: the resource is in a state where the requested change
	// can neither be made nor be considered already made.
	ErrWrongState = errors.New("resource is in the wrong state")
)

// Method names the API operation an error came from. The values are the
// phrases used in error messages.
type Method string

// The Procurement API methods.
const (
	MethodGetAccount         Method = "get account"
	MethodListAccounts       Method = "list accounts"
	MethodApproveAccount     Method = "approve account"
	MethodRejectAccount      Method = "reject account"
	MethodResetAccount       Method = "reset account"
	MethodGetEntitlement     Method = "get entitlement"
	MethodListEntitlements   Method = "list entitlements"
	MethodApproveEntitlement Method = "approve entitlement"
	MethodRejectEntitlement  Method = "reject entitlement"
	MethodApprovePlanChange  Method = "approve plan change"
	MethodRejectPlanChange   Method = "reject plan change"
	MethodSetMessageToUser   Method = "set message to user"
	MethodSuspendEntitlement Method = "suspend entitlement"
)

// permission is the IAM permission each method requires, as named in the
// method reference pages. The list and reset permissions follow the same
// naming pattern but were not read in the reference.
var permission = map[Method]string{
	MethodGetAccount:         "commerceprocurement.providerAccounts.get",
	MethodListAccounts:       "commerceprocurement.providerAccounts.list",
	MethodApproveAccount:     "commerceprocurement.providerAccounts.approve",
	MethodRejectAccount:      "commerceprocurement.providerAccounts.reject",
	MethodResetAccount:       "commerceprocurement.providerAccounts.reset",
	MethodGetEntitlement:     "commerceprocurement.providerEntitlements.get",
	MethodListEntitlements:   "commerceprocurement.providerEntitlements.list",
	MethodApproveEntitlement: "commerceprocurement.providerEntitlements.approve",
	MethodRejectEntitlement:  "commerceprocurement.providerEntitlements.reject",
	MethodApprovePlanChange:  "commerceprocurement.providerEntitlements.approve",
	MethodRejectPlanChange:   "commerceprocurement.providerEntitlements.reject",
	MethodSetMessageToUser:   "commerceprocurement.providerEntitlements.update",
	MethodSuspendEntitlement: "commerceprocurement.providerEntitlements.suspend",
}

// APIError is a failed Procurement API call. Use errors.Is with the
// sentinels above to branch on the kind of failure, IsRetryable to decide
// whether to try again, and errors.As with *googleapi.Error to reach the
// raw response (headers, body, details).
type APIError struct {
	// Method is the operation that failed.
	Method Method
	// Resource is the resource name the call addressed
	// ("providers/p/entitlements/e", or "providers/p" for lists).
	Resource string
	// Code is the HTTP status code.
	Code int
	// Status is the canonical status ("FAILED_PRECONDITION"), from the
	// response body, or derived from Code when the body has none.
	Status string
	// Message is the server's message, cut to a short prefix.
	Message string
	// Hint says what probably went wrong and how to fix it; may be empty.
	Hint string
	// RetryAfter is the delay the server asked for (Retry-After), or 0.
	RetryAfter time.Duration
	// Err is the underlying *googleapi.Error.
	Err error

	// also is an extra sentinel this error matches (ErrSignupNotApproved).
	also error
}

// Error reads like "procurement: approve entitlement providers/p/entitlements/e:
// failed precondition (400): Precondition check failed.".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("procurement: ")
	b.WriteString(string(e.Method))
	if e.Resource != "" {
		b.WriteByte(' ')
		b.WriteString(e.Resource)
	}
	b.WriteString(": ")
	b.WriteString(strings.ToLower(strings.ReplaceAll(e.Status, "_", " ")))
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(e.Code))
	b.WriteByte(')')
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the *googleapi.Error.
func (e *APIError) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel for e's status.
func (e *APIError) Is(target error) bool {
	if target == nil {
		return false
	}
	if e.also != nil && target == e.also {
		return true
	}
	return statusSentinel(e.Status) == target
}

// SafeToRetry reports whether the call can be repeated: the server did not
// act (429) or may not have (5xx). For writes that are not idempotent the
// approval helpers re-read state before repeating.
func (e *APIError) SafeToRetry() bool { return retryableCode(e.Code) }

func retryableCode(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func statusSentinel(status string) error {
	switch status {
	case "INVALID_ARGUMENT", "OUT_OF_RANGE":
		return ErrInvalidArgument
	case "FAILED_PRECONDITION":
		return ErrFailedPrecondition
	case "UNAUTHENTICATED":
		return ErrUnauthenticated
	case "PERMISSION_DENIED":
		return ErrPermissionDenied
	case "NOT_FOUND":
		return ErrNotFound
	case "ABORTED", "ALREADY_EXISTS":
		return ErrConflict
	case "RESOURCE_EXHAUSTED":
		return ErrRateLimited
	case "CANCELLED":
		return ErrCanceled
	case "INTERNAL", "UNKNOWN", "DATA_LOSS":
		return ErrInternal
	case "UNIMPLEMENTED":
		return ErrNotImplemented
	case "UNAVAILABLE":
		return ErrUnavailable
	case "DEADLINE_EXCEEDED":
		return ErrDeadlineExceeded
	}
	return nil
}

// maxMessage bounds the server message kept in an APIError: messages can
// echo request data, and errors end up in logs.
const maxMessage = 200

// newAPIError converts a *googleapi.Error; other errors are returned as is.
func newAPIError(method Method, resource string, err error, now func() time.Time) error {
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		return err
	}
	e := &APIError{
		Method:   method,
		Resource: resource,
		Code:     gerr.Code,
		Message:  truncate(gerr.Message, maxMessage),
		Err:      gerr,
	}
	e.Status = bodyStatus(gerr.Body)
	if e.Status == "" {
		e.Status = apistatus.FromHTTP(gerr.Code)
		// Google's 400 for a wrong state reads "Precondition check failed."
		// even where a proxy dropped the status field.
		if gerr.Code == http.StatusBadRequest && strings.Contains(gerr.Message, "Precondition check failed") {
			e.Status = "FAILED_PRECONDITION"
		}
	}
	if e.Message == "" && gerr.Body != "" && !strings.HasPrefix(strings.TrimSpace(gerr.Body), "{") {
		e.Message = truncate(strings.TrimSpace(gerr.Body), maxMessage)
	}
	e.RetryAfter = parseRetryAfter(gerr.Header.Get("Retry-After"), now)
	switch e.Status {
	case "PERMISSION_DENIED":
		e.Hint = "the caller likely lacks IAM permission " + permission[method] +
			", or its service account is not linked in Producer Portal (Technical integration > Billing integration)"
	case "UNAUTHENTICATED":
		e.Hint = "check the credentials passed to NewClient (Application Default Credentials in production)"
	}
	return e
}

// bodyStatus reads error.status from a Google JSON error body.
func bodyStatus(body string) string {
	if body == "" || !strings.Contains(body, `"status"`) {
		return ""
	}
	var reply struct {
		Error struct {
			Status string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(body), &reply) != nil {
		return ""
	}
	return reply.Error.Status
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now func() time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(time.Hour/time.Second) {
			secs = int64(time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now()); d > 0 {
			return min(d, time.Hour)
		}
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// IsRetryable reports whether err is a failure that may succeed if the same
// call is made again: 429, 500, 502, 503, 504 and transport errors (the
// connection failed, broke or timed out). The caller's context ending is
// not retryable. Note that for a write, a retryable error does not mean the
// write did not happen (the response may have been lost); the approval
// helpers of this package handle that by re-reading state.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var r interface{ SafeToRetry() bool }
	if errors.As(err, &r) {
		return r.SafeToRetry()
	}
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return retryableCode(gerr.Code)
	}
	// A transport failure, including an HTTP client timeout (which wraps
	// context.DeadlineExceeded), unless the request was cancelled. The
	// generated client returns the caller's context error bare, not as a
	// *url.Error, so that case is caught below.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return !errors.Is(uerr.Err, context.Canceled)
	}
	return false
}

// StateError reports that a resource is in a state where the requested
// change can neither be made nor be counted as already made, for example
// approving an entitlement that the customer has cancelled. It matches
// ErrWrongState and ErrFailedPrecondition. Retrying does not help.
type StateError struct {
	// Method is the operation that was refused.
	Method Method
	// Resource is the resource name.
	Resource string
	// State is the state the resource was in.
	State string
	// Detail explains the refusal.
	Detail string
}

// Error reads like "procurement: approve entitlement providers/p/entitlements/e:
// entitlement is ENTITLEMENT_CANCELLED: ...".
func (e *StateError) Error() string {
	return fmt.Sprintf("procurement: %s %s: resource is %s: %s", e.Method, e.Resource, e.State, e.Detail)
}

// Is matches ErrWrongState and ErrFailedPrecondition.
func (e *StateError) Is(target error) bool {
	return target == ErrWrongState || target == ErrFailedPrecondition
}

// PlanMismatchError is returned when the entitlement's pending plan (or, for
// a plan change that is no longer pending, its plan) is not the plan the
// caller expected. Nothing was approved or rejected. It matches
// ErrPlanMismatch.
type PlanMismatchError struct {
	// Method is the operation that was refused.
	Method Method
	// Resource is the entitlement's resource name.
	Resource string
	// Expected is the plan the caller asked about.
	Expected string
	// Actual is the entitlement's current pending plan.
	Actual string
}

// Error describes the mismatch.
func (e *PlanMismatchError) Error() string {
	return fmt.Sprintf("procurement: %s %s: pending plan is %q, expected %q; nothing was changed",
		e.Method, e.Resource, e.Actual, e.Expected)
}

// Is matches ErrPlanMismatch.
func (e *PlanMismatchError) Is(target error) bool { return target == ErrPlanMismatch }
