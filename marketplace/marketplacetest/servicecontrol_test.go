package marketplacetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sc "google.golang.org/api/servicecontrol/v1"
)

// usageConsumer buys a usage-based entitlement and returns its
// usageReportingId.
func usageConsumer(t *testing.T, s *Server) string {
	t.Helper()
	id, err := s.Purchase(context.Background(), PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(t, err)
	e, ok := s.Entitlement(id)
	require.True(t, ok)
	require.NotEmpty(t, e.UsageReportingID)
	return e.UsageReportingID
}

func int64p(v int64) *int64 { return &v }

func usageOp(id, consumer string, start time.Time, metric string, v int64) *sc.Operation {
	return &sc.Operation{
		OperationId:   id,
		OperationName: "Hourly Usage Report",
		ConsumerId:    consumer,
		StartTime:     start.Format(time.RFC3339),
		EndTime:       start.Add(time.Hour).Format(time.RFC3339),
		MetricValueSets: []*sc.MetricValueSet{{
			MetricName:   metric,
			MetricValues: []*sc.MetricValue{{Int64Value: int64p(v)}},
		}},
		UserLabels: map[string]string{"cloudmarketplace.googleapis.com/resource_name": "db-1"},
	}
}

func TestServiceControlCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	consumer := usageConsumer(t, s)
	start := s.Clock().Now()

	resp, err := svc.Services.Check(s.ServiceName(), &sc.CheckRequest{Operation: &sc.Operation{
		OperationId: "op-1", ConsumerId: consumer, StartTime: start.Format(time.RFC3339),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	assert.Empty(t, resp.CheckErrors)
	assert.Equal(t, "op-1", resp.OperationId)
	require.NotNil(t, resp.CheckInfo)
	assert.Equal(t, strings.TrimPrefix(consumer, "project_number:"), fmt.Sprint(resp.CheckInfo.ConsumerInfo.ProjectNumber))

	for _, code := range []string{"SERVICE_NOT_ACTIVATED", "BILLING_DISABLED", "PROJECT_DELETED", "SERVICE_STATUS_UNAVAILABLE", "LOAD_SHEDDING"} {
		s.SetCheckError(consumer, code)
		resp, err := svc.Services.Check(s.ServiceName(), &sc.CheckRequest{Operation: &sc.Operation{
			OperationId: "op-2", ConsumerId: consumer, StartTime: start.Format(time.RFC3339),
		}}).Context(ctx).Do()
		require.NoError(t, err, code)
		require.Len(t, resp.CheckErrors, 1, code)
		assert.Equal(t, code, resp.CheckErrors[0].Code)
		assert.NotNil(t, resp.CheckErrors[0].Status)
	}
	s.ClearCheckError(consumer)

	// Unknown consumer: CONSUMER_INVALID.
	resp, err = svc.Services.Check(s.ServiceName(), &sc.CheckRequest{Operation: &sc.Operation{
		OperationId: "op-3", ConsumerId: "project_number:1", StartTime: start.Format(time.RFC3339),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	require.Len(t, resp.CheckErrors, 1)
	assert.Equal(t, "CONSUMER_INVALID", resp.CheckErrors[0].Code)

	// Unknown service, missing operation.
	requireAPIError(t, doErr(svc.Services.Check("other.example.com", &sc.CheckRequest{Operation: &sc.Operation{
		OperationId: "op-4", ConsumerId: consumer, StartTime: start.Format(time.RFC3339),
	}}).Context(ctx).Do()), 403, "PERMISSION_DENIED")
	requireAPIError(t, doErr(svc.Services.Check(s.ServiceName(), &sc.CheckRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	assert.Equal(t, 6, s.CheckCalls(consumer))
	assert.Equal(t, 1, s.CheckCalls("project_number:1"))
}

func TestServiceControlReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	consumer := usageConsumer(t, s)
	metric := s.ServiceName() + "/requests"
	start := s.Clock().Now().Truncate(time.Hour)

	resp, err := svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
		usageOp("op-1", consumer, start, metric, 150),
		usageOp("op-2", consumer, start.Add(time.Hour), metric, 50),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	assert.Empty(t, resp.ReportErrors)
	assert.Equal(t, int64(200), s.BilledTotal(consumer, metric))
	reps := s.Reports()
	require.Len(t, reps, 2)
	assert.Equal(t, "op-1", reps[0].OperationID)
	assert.Equal(t, start, reps[0].Start)
	assert.Equal(t, "db-1", reps[0].UserLabels["cloudmarketplace.googleapis.com/resource_name"])
	assert.Equal(t, int64(150), reps[0].Metrics[0].Int64)
	assert.Empty(t, s.Violations())

	// Partial success: per-operation reportErrors.
	s.InjectReportError("op-5", 14, "transient")
	bad := usageOp("op-6", consumer, start.Add(3*time.Hour), s.ServiceName()+"/unknown_metric", 1)
	resp, err = svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
		usageOp("op-3", "project_number:1", start, metric, 1),
		usageOp("op-4", consumer, start.Add(2*time.Hour), metric, 10),
		usageOp("op-5", consumer, start.Add(4*time.Hour), metric, 10),
		bad,
	}}).Context(ctx).Do()
	require.NoError(t, err)
	require.Len(t, resp.ReportErrors, 3)
	codes := map[string]int64{}
	for _, e := range resp.ReportErrors {
		codes[e.OperationId] = e.Status.Code
	}
	assert.Equal(t, map[string]int64{"op-3": 3, "op-5": 14, "op-6": 3}, codes)
	assert.Equal(t, int64(210), s.BilledTotal(consumer, metric))

	// The injected error fires once: a retry with the same id is accepted.
	resp, err = svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
		usageOp("op-5", consumer, start.Add(4*time.Hour), metric, 10),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	assert.Empty(t, resp.ReportErrors)

	// A stop-serving check error also refuses reports.
	s.SetCheckError(consumer, "BILLING_DISABLED")
	resp, err = svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
		usageOp("op-7", consumer, start.Add(5*time.Hour), metric, 10),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	require.Len(t, resp.ReportErrors, 1)
	assert.Equal(t, int64(9), resp.ReportErrors[0].Status.Code)
	s.ClearCheckError(consumer)

	// The same metric twice with identical labels invalidates the request.
	dup := usageOp("op-8", consumer, start.Add(6*time.Hour), metric, 1)
	dup.MetricValueSets = append(dup.MetricValueSets, &sc.MetricValueSet{MetricName: metric, MetricValues: []*sc.MetricValue{{Int64Value: int64p(2)}}})
	requireAPIError(t, doErr(svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{dup}}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	// ... but different labels are two series.
	dup.MetricValueSets[1].MetricValues[0].Labels = map[string]string{"tier": "b"}
	resp, err = svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{dup}}).Context(ctx).Do()
	require.NoError(t, err)
	assert.Empty(t, resp.ReportErrors)

	// Over 1 MB: the whole request is INVALID_ARGUMENT.
	big := usageOp("op-9", consumer, start.Add(7*time.Hour), metric, 1)
	big.UserLabels["padding"] = strings.Repeat("x", 1<<20)
	requireAPIError(t, doErr(svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{big}}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")

	// Unknown service.
	requireAPIError(t, doErr(svc.Services.Report("nope.example.com", &sc.ReportRequest{}).Context(ctx).Do()), 403, "PERMISSION_DENIED")
	// Unknown JSON field.
	badClient := serviceControlClient(t, s, withExtraField(s, "operationz"))
	requireAPIError(t, doErr(badClient.Services.Report(s.ServiceName(), &sc.ReportRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")

	assert.Empty(t, s.Violations())
	assert.Equal(t, 5, s.ReportCalls())
}

func TestDoubleBillingDetector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	consumer := usageConsumer(t, s)
	metric := s.ServiceName() + "/storage_gib"
	start := s.Clock().Now().Truncate(time.Hour)
	report := func(op *sc.Operation) {
		t.Helper()
		resp, err := svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{op}}).Context(ctx).Do()
		require.NoError(t, err)
		require.Empty(t, resp.ReportErrors)
	}

	report(usageOp("window-1", consumer, start, metric, 5))
	// A retry with the same operationId and content (a lost response,
	// resent): deduplicated, billed once.
	report(usageOp("window-1", consumer, start, metric, 5))
	// The same operationId reused for different usage: a violation.
	report(usageOp("window-1", consumer, start, metric, 6))
	// The same usage again under a new id, overlapping half the window.
	report(usageOp("window-1b", consumer, start.Add(30*time.Minute), metric, 5))
	// Contiguous with window-1b: fine.
	report(usageOp("window-2", consumer, start.Add(90*time.Minute), metric, 5))
	// Same window, other userLabels: another resource, fine.
	other := usageOp("window-3", consumer, start, metric, 5)
	other.UserLabels = map[string]string{"cloudmarketplace.googleapis.com/resource_name": "db-2"}
	report(other)

	v := s.Violations()
	require.Len(t, v, 2)
	assert.Equal(t, Violation{Kind: DuplicateOperation, OperationID: "window-1", OtherOperationID: "window-1", ConsumerID: consumer, Start: start, End: start.Add(time.Hour)}, v[0])
	assert.Equal(t, OverlappingUsage, v[1].Kind)
	assert.Equal(t, "window-1b", v[1].OperationID)
	assert.Equal(t, "window-1", v[1].OtherOperationID)
	assert.Equal(t, metric, v[1].Metric)
	assert.Equal(t, int64(26), s.BilledTotal(consumer, metric), "5 once (the resend is deduplicated), 6 under the reused id, then 3×5")
	resends := s.Resends()
	require.Len(t, resends, 1)
	assert.Equal(t, "window-1", resends[0].OperationID)
}

func TestOverlaps(t *testing.T) {
	t.Parallel()
	at := func(h int) time.Time { return time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		a0, a1, b0, b1 int
		want           bool
	}{
		{0, 1, 1, 2, false},
		{0, 2, 1, 3, true},
		{0, 3, 1, 2, true},
		{1, 1, 1, 1, true},
		{1, 1, 0, 2, true},
		{2, 2, 0, 2, false},
		{0, 2, 2, 2, false},
	} {
		assert.Equal(t, tc.want, overlaps(at(tc.a0), at(tc.a1), at(tc.b0), at(tc.b1)), "%+v", tc)
	}
}

// TestServiceControlUncheckedReports: an operation reported under an id no
// services.check carried is listed; one checked first is not.
func TestServiceControlUncheckedReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	consumer := usageConsumer(t, s)
	metric := s.ServiceName() + "/requests"
	start := s.Clock().Now().Truncate(time.Hour)
	checked := usageOp("op-checked", consumer, start, metric, 1)
	_, err := svc.Services.Check(s.ServiceName(), &sc.CheckRequest{Operation: checked}).Context(ctx).Do()
	require.NoError(t, err)
	_, err = svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
		checked, usageOp("op-unchecked", consumer, start.Add(time.Hour), metric, 1),
	}}).Context(ctx).Do()
	require.NoError(t, err)
	unchecked := s.UncheckedReports()
	require.Len(t, unchecked, 1)
	assert.Equal(t, "op-unchecked", unchecked[0].OperationID)
}
