package usage_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// ExampleReporter_Export reads back, as CSV, what a reporter billed in a
// month: one line per operation and metric, to reconcile with Cloud
// Billing's export.
func ExampleReporter_Export() {
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
	_ = r.Register(ctx, usage.Consumer{EntitlementID: entitlementID, UsageReportingID: ent.UsageReportingID})
	_ = r.Record(ctx, usage.Record{EntitlementID: entitlementID, Metric: "requests", Int64: 42})
	srv.Clock().Advance(2 * time.Hour)
	_ = r.Flush(ctx)

	month := srv.Clock().Now().UTC()
	month = time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	if _, err := r.Export(ctx, &out, usage.ExportCSV, usage.ReadBackQuery{From: month, To: month.AddDate(0, 1, 0)}); err != nil {
		fmt.Println(err)
		return
	}
	lines, _ := csv.NewReader(&out).ReadAll()
	fmt.Println(strings.Join(lines[0], ","))
	for _, l := range lines[1:] { // metric, value, windowStart, windowEnd, state
		fmt.Println(l[3], l[4], l[6], l[7], l[8])
	}
	// Output:
	// operationId,entitlementId,consumerId,metric,value,labels,windowStart,windowEnd,state,reportedAt,attempts,reason
	// example-service.endpoints.acme-provider.cloud.goog/requests 42 2026-01-05T09:00:00Z 2026-01-05T10:00:00Z reported
}
