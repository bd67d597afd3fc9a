package conformance

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	sc "google.golang.org/api/servicecontrol/v1"
)

// PatchWithoutUpdateMask: entitlements.patch without updateMask updates
// the populated fields (AIP-134), here messageToUser. It writes, so it runs
// only where Target.UnapprovedAccountEntitlementID is set (never against
// Google).
func PatchWithoutUpdateMask(t *testing.T, tgt Target) {
	if tgt.UnapprovedAccountEntitlementID == "" {
		t.Skip("needs Target.UnapprovedAccountEntitlementID (emulator only: patch writes)")
	}
	ctx := context.Background()
	name := tgt.provider() + "/entitlements/" + tgt.UnapprovedAccountEntitlementID
	const msg = "conformance: provisioning takes a minute"
	e, err := Procurement(t, tgt).Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: msg}).Context(ctx).Do()
	if err != nil {
		t.Fatalf("patch %s without updateMask: %v", name, err)
	}
	if e.MessageToUser != msg {
		t.Errorf("messageToUser = %q, want %q", e.MessageToUser, msg)
	}
}

// ConsumerIDForms: services.check knows the entitlement's consumer under
// every form the discovery document lists for a project
// (Operation.consumerId: project_number:N and projects/N), with no
// CONSUMER_INVALID. A check bills nothing: safe against Google.
func ConsumerIDForms(t *testing.T, tgt Target) {
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	n, ok := strings.CutPrefix(e.UsageReportingId, "project_number:")
	if !ok {
		t.Skipf("usageReportingId %q is not project_number:N", e.UsageReportingId)
	}
	for _, id := range []string{e.UsageReportingId, "projects/" + n} {
		resp, err := ServiceControl(t, tgt).Services.Check(tgt.ServiceName, &sc.CheckRequest{Operation: &sc.Operation{
			OperationId:   "0b6f7c1e-9d3a-5c2e-8f41-000000000c1d",
			OperationName: "conformance.check",
			ConsumerId:    id,
			StartTime:     time.Now().UTC().Format(time.RFC3339),
		}}).Context(ctx).Do()
		if err != nil {
			t.Fatalf("check %s: %v", id, err)
		}
		for _, ce := range resp.CheckErrors {
			if ce.Code == "CONSUMER_INVALID" {
				t.Errorf("check %s: CONSUMER_INVALID (%s)", id, ce.Detail)
			}
		}
	}
}

// UserLabelsSyntax: services.report refuses userLabels that break Google
// Cloud's label rules (a key starting with an upper-case letter or holding
// a space, a value over 63 characters) with 400 INVALID_ARGUMENT, and
// accepts the reserved cloudmarketplace.googleapis.com/resource_name key
// ("Best practices for labeling usage"). It reports usage, so it runs only
// where Target.ReportMetric is set.
func UserLabelsSyntax(t *testing.T, tgt Target) {
	if tgt.ReportMetric == "" {
		t.Skip("needs Target.ReportMetric (emulator only: services.report bills)")
	}
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	end := time.Now().UTC().Truncate(time.Second)
	one := int64(1)
	report := func(opID string, labels map[string]string) (*sc.ReportResponse, error) {
		return ServiceControl(t, tgt).Services.Report(tgt.ServiceName, &sc.ReportRequest{Operations: []*sc.Operation{{
			OperationId: opID, OperationName: "conformance.report", ConsumerId: e.UsageReportingId,
			StartTime: end.Add(-time.Minute).Format(time.RFC3339), EndTime: end.Format(time.RFC3339),
			UserLabels:      labels,
			MetricValueSets: []*sc.MetricValueSet{{MetricName: tgt.ReportMetric, MetricValues: []*sc.MetricValue{{Int64Value: &one}}}},
		}}}).Context(ctx).Do()
	}
	for i, labels := range []map[string]string{
		{"Environment": "prod"},
		{"has space": "x"},
		{"env": strings.Repeat("a", 64)},
		{"env": "Prod"},
	} {
		if _, err := report("conformance-user-labels-bad-"+string(rune('a'+i)), labels); err == nil {
			t.Errorf("userLabels %v accepted, want 400 INVALID_ARGUMENT", labels)
		} else {
			APIError(t, err, http.StatusBadRequest)
		}
	}
	resp, err := report("conformance-user-labels-ok", map[string]string{
		"cloudmarketplace.googleapis.com/resource_name": "order_history_cache", "environment": "prod",
	})
	if err != nil {
		t.Fatalf("valid userLabels: %v", err)
	}
	if len(resp.ReportErrors) > 0 {
		t.Errorf("valid userLabels: reportErrors %+v", resp.ReportErrors[0].Status)
	}
}
