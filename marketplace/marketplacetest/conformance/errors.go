package conformance

import (
	"context"
	"net/http"
	"testing"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/googleapi"
)

// ErrorInfo is a google.rpc.ErrorInfo read from googleapi.Error.Details.
type ErrorInfo struct {
	Reason   string
	Domain   string
	Metadata map[string]string
}

// ErrorInfoOf returns the google.rpc.ErrorInfo among the error's details
// (Google's JSON error format, "@type"
// type.googleapis.com/google.rpc.ErrorInfo), or fails the test.
func ErrorInfoOf(t *testing.T, gerr *googleapi.Error) ErrorInfo {
	t.Helper()
	for _, d := range gerr.Details {
		m, ok := d.(map[string]any)
		if !ok || m["@type"] != "type.googleapis.com/google.rpc.ErrorInfo" {
			continue
		}
		info := ErrorInfo{Metadata: map[string]string{}}
		info.Reason, _ = m["reason"].(string)
		info.Domain, _ = m["domain"].(string)
		md, _ := m["metadata"].(map[string]any)
		for k, v := range md {
			info.Metadata[k], _ = v.(string)
		}
		if info.Reason == "" || info.Domain == "" {
			t.Errorf("ErrorInfo without reason or domain: %v", m)
		}
		return info
	}
	t.Fatalf("%d error carries no google.rpc.ErrorInfo in details; body %s", gerr.Code, gerr.Body)
	return ErrorInfo{}
}

// ErrorInfoNotFound: a 404 carries a google.rpc.ErrorInfo in details
// (AIP-193: every error does).
func ErrorInfoNotFound(t *testing.T, tgt Target) {
	ctx := context.Background()
	name := tgt.provider() + "/entitlements/conformance-does-not-exist"
	_, err := Procurement(t, tgt).Providers.Entitlements.Get(name).Context(ctx).Do()
	ErrorInfoOf(t, APIError(t, err, http.StatusNotFound))
}

// ErrorInfoPermissionDenied: reading another provider's entitlement is 403
// with reason IAM_PERMISSION_DENIED, domain iam.googleapis.com and the
// permission in metadata.
func ErrorInfoPermissionDenied(t *testing.T, tgt Target) {
	ctx := context.Background()
	name := "providers/conformance-not-your-provider/entitlements/x"
	_, err := Procurement(t, tgt).Providers.Entitlements.Get(name).Context(ctx).Do()
	info := ErrorInfoOf(t, APIError(t, err, http.StatusForbidden))
	if info.Reason != "IAM_PERMISSION_DENIED" || info.Domain != "iam.googleapis.com" {
		t.Errorf("ErrorInfo %+v, want reason IAM_PERMISSION_DENIED in domain iam.googleapis.com", info)
	}
	if info.Metadata["permission"] != "commerceprocurement.providerEntitlements.get" {
		t.Errorf("metadata permission %q, want commerceprocurement.providerEntitlements.get", info.Metadata["permission"])
	}
}

// ErrorInfoFailedPrecondition: approving an entitlement whose account has
// not signed up is 400 FAILED_PRECONDITION with an ErrorInfo. It calls
// approve, so it runs only where Target.UnapprovedAccountEntitlementID is
// set: never against Google, where the same call on a signed-up account
// would approve the entitlement for real.
func ErrorInfoFailedPrecondition(t *testing.T, tgt Target) {
	if tgt.UnapprovedAccountEntitlementID == "" {
		t.Skip("needs Target.UnapprovedAccountEntitlementID (emulator only: approve is not reversible)")
	}
	ctx := context.Background()
	name := tgt.provider() + "/entitlements/" + tgt.UnapprovedAccountEntitlementID
	_, err := Procurement(t, tgt).Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	info := ErrorInfoOf(t, APIError(t, err, http.StatusBadRequest))
	if info.Reason == "" {
		t.Errorf("ErrorInfo %+v has no reason", info)
	}
}
