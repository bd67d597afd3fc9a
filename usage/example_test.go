package usage_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Example reports an hour of usage to the emulator. In production, pass the
// service's credentials as client options (option.WithCredentialsFile...),
// a durable ledger (sqlitestore or pgstore), run r.Run(ctx) in a goroutine
// and Close the reporter at shutdown.
func Example() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	entitlementID, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	ent, _ := srv.Entitlement(entitlementID)

	r, err := usage.New(ctx, srv.ServiceName(), memstore.New(), &usage.Config{
		Runtime: gcpmarketplace.Runtime{Clock: srv.Clock().Now},
		Metrics: map[string]usage.MetricKind{"requests": usage.Int64},
	}, srv.ClientOptions()...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close(ctx)
	_ = r.Register(ctx, usage.Consumer{EntitlementID: entitlementID, UsageReportingID: ent.UsageReportingID})
	for range 3 {
		srv.Clock().Advance(10 * time.Minute)
		_ = r.Record(ctx, usage.Record{
			EntitlementID: entitlementID,
			Metric:        "requests",
			Int64:         5,
			Labels:        map[string]string{usage.LabelResourceName: "db-1"},
		})
	}
	srv.Clock().Advance(time.Hour)
	if err := r.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	for _, op := range srv.Reports() {
		fmt.Println(op.Start.Format(time.TimeOnly), op.End.Format(time.TimeOnly), op.Metrics[0].Int64, op.UserLabels[usage.LabelResourceName])
	}
	// Output:
	// 09:00:00 10:00:00 15 db-1
}

func ExampleOperationID() {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	fmt.Println(usage.OperationID("ent-1", start, []string{"svc/requests"}, "{}"))
	// Output:
	// f1522ec9-e780-51c9-80a9-226e9a779bef
}

func ExampleDeadline() {
	start := time.Date(2026, 9, 30, 23, 0, 0, 0, time.UTC)
	fmt.Println(usage.Deadline(start, start.Add(time.Hour)))
	start = time.Date(2026, 10, 1, 7, 0, 0, 0, time.UTC) // 00:00 PDT
	fmt.Println(usage.Deadline(start.Add(-time.Hour), start))
	// Output:
	// 2026-10-01 01:00:00 +0000 UTC
	// 2026-10-01 08:00:00 +0000 UTC
}
