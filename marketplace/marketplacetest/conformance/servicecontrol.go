package conformance

import (
	"context"
	"testing"
	"time"

	sc "google.golang.org/api/servicecontrol/v1"
)

// ServiceControl is a generated Service Control client for the target.
func ServiceControl(t *testing.T, tgt Target) *sc.Service {
	t.Helper()
	svc, err := sc.NewService(context.Background(), tgt.Options...)
	if err != nil {
		t.Fatalf("service control client: %v", err)
	}
	return svc
}

// ServiceCheck: services.check of the entitlement's usageReportingId
// answers 200 with the request's operationId and a serviceConfigId
// (servicecontrol/v1 CheckResponse). A check bills nothing, so it is safe
// against Google; whether it carries checkErrors depends on the sandbox
// entitlement's state and is not asserted here.
func ServiceCheck(t *testing.T, tgt Target) {
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	if e.UsageReportingId == "" {
		t.Skipf("%s is not usage-based (no usageReportingId)", e.Name)
	}
	const opID = "0b6f7c1e-9d3a-5c2e-8f41-000000000c0f" // a fixed UUIDv5-shaped id: a check is not billed
	resp, err := ServiceControl(t, tgt).Services.Check(tgt.ServiceName, &sc.CheckRequest{Operation: &sc.Operation{
		OperationId:   opID,
		OperationName: "conformance.check",
		ConsumerId:    e.UsageReportingId,
		StartTime:     time.Now().UTC().Format(time.RFC3339),
	}}).Context(ctx).Do()
	if err != nil {
		t.Fatalf("check %s: %v", e.UsageReportingId, err)
	}
	if resp.OperationId != opID {
		t.Errorf("operationId = %q, want %q", resp.OperationId, opID)
	}
	if resp.ServiceConfigId == "" {
		t.Error("serviceConfigId is empty")
	}
}
