package conformance

import (
	"context"
	"net/http"
	"testing"
	"time"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/option"
	sc "google.golang.org/api/servicecontrol/v1"
)

// unauthenticated are client options for the target's endpoint that send
// no credential.
func (tgt Target) unauthenticated() []option.ClientOption {
	opts := []option.ClientOption{option.WithoutAuthentication()}
	if tgt.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(tgt.Endpoint))
	}
	return opts
}

// Unauthenticated: Procurement and Service Control answer a request without
// an Authorization header with 401 UNAUTHENTICATED and a
// google.rpc.ErrorInfo (Google's front end: reason CREDENTIALS_MISSING in
// domain googleapis.com). Both calls are reads or a check: safe against
// Google.
func Unauthenticated(t *testing.T, tgt Target) {
	ctx := context.Background()
	want := func(what string, err error) {
		t.Helper()
		info := ErrorInfoOf(t, APIError(t, err, http.StatusUnauthorized))
		if info.Reason != "CREDENTIALS_MISSING" || info.Domain != "googleapis.com" {
			t.Errorf("%s: ErrorInfo %+v, want reason CREDENTIALS_MISSING in domain googleapis.com", what, info)
		}
	}
	proc, err := ccp.NewService(ctx, tgt.unauthenticated()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = proc.Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	want("entitlements.get", err)

	ctl, err := sc.NewService(ctx, tgt.unauthenticated()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ctl.Services.Check(tgt.ServiceName, &sc.CheckRequest{Operation: &sc.Operation{
		OperationId:   "0b6f7c1e-9d3a-5c2e-8f41-000000000a07",
		OperationName: "conformance.check",
		ConsumerId:    "project_number:1",
		StartTime:     time.Now().UTC().Format(time.RFC3339),
	}}).Context(ctx).Do()
	want("services.check", err)
}
