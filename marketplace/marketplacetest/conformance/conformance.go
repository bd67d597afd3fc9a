package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// Target is an endpoint to check and the ids of resources it already holds.
// The suite only reads them.
type Target struct {
	// Options point the generated clients at the endpoint; none means
	// Google's production endpoint with Application Default Credentials.
	Options []option.ClientOption
	// Endpoint is the base URL the Options point at ("http://host:port/"),
	// for the behaviours that build a client without credentials; empty
	// means Google's production endpoints.
	Endpoint string
	// ProviderID is the partner id (providers/<ProviderID>).
	ProviderID string
	// ServiceName is the Service Control service name of the product.
	ServiceName string
	// EntitlementID is an entitlement of the provider; AccountID is the
	// account that owns it.
	EntitlementID string
	AccountID     string
	// UnapprovedAccountEntitlementID is an entitlement awaiting approval
	// whose account has not signed up, for the behaviours that call a
	// mutating method expecting it to fail. Emulator only: FromEnv never
	// sets it, and those behaviours skip without it.
	UnapprovedAccountEntitlementID string
	// ReportMetric is an INT64 metric of ServiceName, for the behaviours
	// that call services.report. Emulator only: a report bills at Google,
	// so FromEnv never sets it and those behaviours skip without it.
	ReportMetric string
	// DetailedEntitlementID is an entitlement bought through a quote from
	// a private offer with a fixed end date (EntitlementDetails);
	// ResellerAccountID is an account of a reseller subaccount
	// (AccountViews). Optional: those behaviours skip without them.
	DetailedEntitlementID string
	ResellerAccountID     string
	// Lifecycle names consumers of entitlements that are not (or no
	// longer) ACTIVE, for the Service Control lifecycle behaviours
	// (lifecycle.go). FromEnv sets only its Cancelled consumer, and only
	// from EnvCancelledConsumer and EnvCancelledAt.
	Lifecycle Lifecycle
}

// Environment variables naming a sandbox listing for FromEnv.
const (
	EnvProvider    = "GCPMARKETPLACE_CONFORMANCE_PROVIDER"
	EnvService     = "GCPMARKETPLACE_CONFORMANCE_SERVICE"
	EnvEntitlement = "GCPMARKETPLACE_CONFORMANCE_ENTITLEMENT"
	EnvAccount     = "GCPMARKETPLACE_CONFORMANCE_ACCOUNT"
)

// FromEnv is the Google target described by the environment, or false with
// a message naming the variables that are missing.
func FromEnv() (Target, string, bool) {
	t := Target{
		ProviderID:    os.Getenv(EnvProvider),
		ServiceName:   os.Getenv(EnvService),
		EntitlementID: os.Getenv(EnvEntitlement),
		AccountID:     os.Getenv(EnvAccount),
		Lifecycle:     cancelledFromEnv(),
	}
	var missing []string
	for _, v := range []struct{ name, value string }{
		{EnvProvider, t.ProviderID}, {EnvService, t.ServiceName}, {EnvEntitlement, t.EntitlementID}, {EnvAccount, t.AccountID},
	} {
		if v.value == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return Target{}, fmt.Sprintf("conformance against Google needs %s (and Application Default Credentials); see the package doc",
			strings.Join(missing, ", ")), false
	}
	return t, "", true
}

// Run runs every read-only behaviour against the target, each as a subtest.
func Run(t *testing.T, tgt Target) {
	for _, b := range Behaviours() {
		t.Run(b.Name, func(t *testing.T) { b.Test(t, tgt) })
	}
}

// Behaviour is one documented behaviour of the API, checked against a
// target.
type Behaviour struct {
	Name string
	Test func(t *testing.T, tgt Target)
}

// Behaviours is the list Run runs, in a stable order.
func Behaviours() []Behaviour {
	return []Behaviour{
		{"EntitlementGet", EntitlementGet},
		{"AccountGet", AccountGet},
		{"EntitlementListByAccount", EntitlementListByAccount},
		{"EntitlementListPages", EntitlementListPages},
		{"FilterProduct", FilterProduct},
		{"EntitlementNotFound", EntitlementNotFound},
		{"ServiceCheck", ServiceCheck},
		{"ErrorInfoNotFound", ErrorInfoNotFound},
		{"ErrorInfoPermissionDenied", ErrorInfoPermissionDenied},
		{"ErrorInfoFailedPrecondition", ErrorInfoFailedPrecondition},
		{"PartialResponseGet", PartialResponseGet},
		{"PartialResponseList", PartialResponseList},
		{"BindingProtoNames", BindingProtoNames},
		{"BindingWrongCase", BindingWrongCase},
		{"BindingQueryProtoName", BindingQueryProtoName},
		{"Unauthenticated", Unauthenticated},
		{"MetricValueTypes", MetricValueTypes},
		{"EntitlementDetails", EntitlementDetails},
		{"AccountViews", AccountViews},
		{"PatchWithoutUpdateMask", PatchWithoutUpdateMask},
		{"ConsumerIDForms", ConsumerIDForms},
		{"UserLabelsSyntax", UserLabelsSyntax},
		{"CheckAfterCancel", CheckAfterCancel},
		{"ReportAfterEnd", ReportAfterEnd},
		{"ReportBeforeApproval", ReportBeforeApproval},
		{"ReportAfterReject", ReportAfterReject},
		{"ReportAfterAccountDeletion", ReportAfterAccountDeletion},
		{"LateReportBeforeEnd", LateReportBeforeEnd},
	}
}

// Procurement is a generated Procurement client for the target.
func Procurement(t *testing.T, tgt Target) *ccp.Service {
	t.Helper()
	svc, err := ccp.NewService(context.Background(), tgt.Options...)
	if err != nil {
		t.Fatalf("procurement client: %v", err)
	}
	return svc
}

func (tgt Target) provider() string { return "providers/" + tgt.ProviderID }

func (tgt Target) entitlementName() string {
	return tgt.provider() + "/entitlements/" + tgt.EntitlementID
}

func (tgt Target) accountName() string { return tgt.provider() + "/accounts/" + tgt.AccountID }

// APIError asserts that err is a *googleapi.Error with this HTTP code and
// returns it.
func APIError(t *testing.T, err error, code int) *googleapi.Error {
	t.Helper()
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("want *googleapi.Error %d, got %T: %v", code, err, err)
	}
	if gerr.Code != code {
		t.Fatalf("HTTP code %d, want %d; body %s", gerr.Code, code, gerr.Body)
	}
	return gerr
}
