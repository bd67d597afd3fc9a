package marketplacetest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/googleapi"
	sc "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// A customer buys; the provider approves through the real generated client.
func Example() {
	ctx := context.Background()
	s := marketplacetest.New(nil)
	defer s.Close()
	svc, err := ccp.NewService(ctx, s.ClientOptions()...)
	if err != nil {
		panic(err)
	}

	entID, _ := s.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "pro"})
	ent, _ := s.Entitlement(entID)

	// Approving before the account signed up fails, as on Google.
	_, err = svc.Providers.Entitlements.Approve(s.EntitlementName(entID), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		fmt.Println(gerr.Code, gerr.Message)
	}

	_, _ = svc.Providers.Accounts.Approve(ent.Account, &ccp.ApproveAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()
	_, _ = svc.Providers.Entitlements.Approve(s.EntitlementName(entID), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	got, _ := svc.Providers.Entitlements.Get(s.EntitlementName(entID)).Context(ctx).Do()
	fmt.Println(got.State, got.Plan)

	for _, ev := range s.Published() {
		fmt.Printf("%q\n", ev.EventType)
	}
	// Output:
	// 400 Precondition check failed.
	// ENTITLEMENT_ACTIVE pro
	// ""
	// "ENTITLEMENT_CREATION_REQUESTED"
	// "ENTITLEMENT_ACTIVE"
}

// Reporting the same usage twice is accepted, as Google might, and flagged.
func ExampleServer_Violations() {
	ctx := context.Background()
	s := marketplacetest.New(nil)
	defer s.Close()
	svc, err := sc.NewService(ctx, s.ClientOptions()...)
	if err != nil {
		panic(err)
	}
	entID, _ := s.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	ent, _ := s.Entitlement(entID)

	start := s.Clock().Now()
	value := int64(42)
	op := &sc.Operation{
		OperationId: "6f1c2a34-0000-5000-8000-000000000001",
		ConsumerId:  ent.UsageReportingID,
		StartTime:   start.Format(time.RFC3339),
		EndTime:     start.Add(time.Hour).Format(time.RFC3339),
		MetricValueSets: []*sc.MetricValueSet{{
			MetricName:   s.ServiceName() + "/requests",
			MetricValues: []*sc.MetricValue{{Int64Value: &value}},
		}},
	}
	send := func() {
		resp, err := svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{op}}).Context(ctx).Do()
		fmt.Println(err, len(resp.ReportErrors))
	}
	send()
	send() // a resend after a lost response: deduplicated
	value = 7
	send() // the same operationId for other usage: flagged
	fmt.Println(s.BilledTotal(ent.UsageReportingID, s.ServiceName()+"/requests"), len(s.Resends()))
	for _, v := range s.Violations() {
		fmt.Println(v.Kind, v.OperationID)
	}
	// Output:
	// <nil> 0
	// <nil> 0
	// <nil> 0
	// 49 1
	// DuplicateOperation 6f1c2a34-0000-5000-8000-000000000001
}

// "Acted but the response was lost": the state changed, the client got 503.
func ExampleServer_InjectFault() {
	ctx := context.Background()
	s := marketplacetest.New(nil)
	defer s.Close()
	svc, err := ccp.NewService(ctx, s.ClientOptions()...)
	if err != nil {
		panic(err)
	}
	entID, _ := s.Purchase(ctx, marketplacetest.PurchaseParams{})
	ent, _ := s.Entitlement(entID)
	_, _ = svc.Providers.Accounts.Approve(ent.Account, &ccp.ApproveAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()

	s.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsApprove, Kind: marketplacetest.FaultLostResponse})
	_, err = svc.Providers.Entitlements.Approve(s.EntitlementName(entID), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	fmt.Println(err.(*googleapi.Error).Code)
	ent, _ = s.Entitlement(entID)
	fmt.Println(ent.State)
	// Output:
	// 503
	// ENTITLEMENT_ACTIVE
}

// Scheduled starts take effect when the clock passes them.
func ExampleClock_Advance() {
	ctx := context.Background()
	s := marketplacetest.New(nil)
	defer s.Close()
	entID, _ := s.Purchase(ctx, marketplacetest.PurchaseParams{
		AutoApprove: true,
		StartTime:   s.Clock().Now().Add(24 * time.Hour),
	})
	ent, _ := s.Entitlement(entID)
	fmt.Println(ent.State)
	s.Clock().Advance(24 * time.Hour)
	ent, _ = s.Entitlement(entID)
	fmt.Println(ent.State)
	// Output:
	// ENTITLEMENT_ACTIVATION_REQUESTED
	// ENTITLEMENT_ACTIVE
}
