package marketplacetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sc "google.golang.org/api/servicecontrol/v1"
)

// A private offer approved for a later start: its consumer's life begins
// at the scheduled start, not at the approval; ConsumerLife shows it, and
// services.report refuses usage before it and accepts usage after it.
func TestConsumerLifeScheduledStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	start := s.Clock().Now().Add(2 * time.Hour)
	id, err := s.Purchase(ctx, PurchaseParams{UsageBased: true, AutoApprove: true, StartTime: start})
	require.NoError(t, err)
	e, ok := s.Entitlement(id)
	require.True(t, ok)
	life, ok := s.ConsumerLife("projects/" + e.UsageReportingID[len("project_number:"):])
	require.True(t, ok, "any consumer id form")
	assert.True(t, life.Active.IsZero(), "not active before its start")

	metric := s.ServiceName() + "/requests"
	report := func(opID string, from time.Time) []*sc.ReportError {
		t.Helper()
		resp, err := svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: []*sc.Operation{
			usageOp(opID, e.UsageReportingID, from, metric, 1),
		}}).Context(ctx).Do()
		require.NoError(t, err)
		return resp.ReportErrors
	}
	require.Len(t, report("before-start", start.Add(-time.Hour)), 1)
	require.NoError(t, s.Clock().Set(start.Add(time.Hour)))
	require.Len(t, report("straddling-start", start.Add(-30*time.Minute)), 1, "partly before the start")
	assert.Empty(t, report("after-start", start))
	life, _ = s.ConsumerLife(e.UsageReportingID)
	assert.True(t, life.Active.Equal(start), "active from %v, want %v", life.Active, start)
	assert.Equal(t, id, life.EntitlementID)

	require.NoError(t, s.Cancel(ctx, id, true))
	life, _ = s.ConsumerLife(e.UsageReportingID)
	assert.Equal(t, "user-cancelled", life.Reason)
	assert.False(t, life.End.IsZero())
	require.NoError(t, s.DeleteEntitlement(ctx, id))
	life, _ = s.ConsumerLife(e.UsageReportingID)
	assert.True(t, life.Deleted)
	_, ok = s.ConsumerLife("project_number:1")
	assert.False(t, ok)
}
