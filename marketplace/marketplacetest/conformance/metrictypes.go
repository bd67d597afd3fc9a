package conformance

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	sc "google.golang.org/api/servicecontrol/v1"
)

// MetricValueTypes: services.report refuses, for the whole request with
// 400 INVALID_ARGUMENT, a value of an INT64 metric (every billing metric is
// DELTA INT64: Google's "Reporting billing metrics" page) that is a
// doubleValue, boolValue, stringValue, moneyValue, distributionValue or no
// value at all, and accepts an int64Value. It reports usage, which Google
// would bill, so it runs only where Target.ReportMetric is set (never by
// FromEnv).
func MetricValueTypes(t *testing.T, tgt Target) {
	if tgt.ReportMetric == "" {
		t.Skip("needs Target.ReportMetric (emulator only: services.report bills)")
	}
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	if e.UsageReportingId == "" {
		t.Skipf("%s is not usage-based (no usageReportingId)", e.Name)
	}
	ctl := ServiceControl(t, tgt)
	end := time.Now().UTC().Truncate(time.Second)
	n := 0
	report := func(v *sc.MetricValue) (*sc.ReportResponse, error) {
		n++
		return ctl.Services.Report(tgt.ServiceName, &sc.ReportRequest{Operations: []*sc.Operation{{
			OperationId:     fmt.Sprintf("conformance-metric-type-%03d", n),
			OperationName:   "conformance.report",
			ConsumerId:      e.UsageReportingId,
			StartTime:       end.Add(-time.Minute).Format(time.RFC3339),
			EndTime:         end.Format(time.RFC3339),
			MetricValueSets: []*sc.MetricValueSet{{MetricName: tgt.ReportMetric, MetricValues: []*sc.MetricValue{v}}},
		}}}).Context(ctx).Do()
	}
	one, half, yes, text := int64(1), 0.5, true, "1"
	for name, v := range map[string]*sc.MetricValue{
		"doubleValue":       {DoubleValue: &half},
		"boolValue":         {BoolValue: &yes},
		"stringValue":       {StringValue: &text},
		"moneyValue":        {MoneyValue: &sc.Money{CurrencyCode: "USD", Units: 1}},
		"distributionValue": {DistributionValue: &sc.Distribution{Count: 1}},
		"no value":          {},
	} {
		_, err := report(v)
		if err == nil {
			t.Errorf("%s for INT64 metric %s: accepted, want 400 INVALID_ARGUMENT", name, tgt.ReportMetric)
			continue
		}
		APIError(t, err, http.StatusBadRequest)
	}
	resp, err := report(&sc.MetricValue{Int64Value: &one})
	if err != nil {
		t.Fatalf("int64Value for %s: %v", tgt.ReportMetric, err)
	}
	if len(resp.ReportErrors) > 0 {
		t.Errorf("int64Value for %s: reportErrors %+v", tgt.ReportMetric, resp.ReportErrors[0].Status)
	}
}
