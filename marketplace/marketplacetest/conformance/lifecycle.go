package conformance

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	sc "google.golang.org/api/servicecontrol/v1"
)

// Consumer is a usage-based entitlement's usageReportingId at a point of
// its life, with the times that bound the usage Service Control may charge
// to it.
type Consumer struct {
	// ID is the usageReportingId.
	ID string
	// Active is when the entitlement became ACTIVE; zero if it never did.
	Active time.Time
	// End is when it ended (its cancellation, rejection or its account's
	// deletion). For a consumer that never ended, any time after which the
	// state held (the behaviours report around it).
	End time.Time
}

// Lifecycle names consumers at the stages of their entitlement's life that
// decide whether usage is charged (google-apis.md §4.1). Each field is
// optional: the behaviours that need one skip without it.
type Lifecycle struct {
	// NotApproved: an entitlement awaiting approval (never ACTIVE).
	NotApproved Consumer
	// Cancelled: cancelled at once by the customer after being ACTIVE for
	// at least an hour before End. Against Google it is read-only (check):
	// set EnvCancelledConsumer and EnvCancelledAt.
	Cancelled Consumer
	// TermEnded: cancelled at the end of its term (PENDING_CANCELLATION,
	// then CANCELLED when the term ended at End).
	TermEnded Consumer
	// TermEndedLate: cancelled at the end of its term, flipped to
	// CANCELLED only well after the term's end (offerEndTime), which is
	// its End: usage between the two is not charged.
	TermEndedLate Consumer
	// Rejected: refused with entitlements.reject (never ACTIVE).
	Rejected Consumer
	// AccountDeleted: ACTIVE, then ended at End by its account's deletion.
	AccountDeleted Consumer
}

// Environment variables naming a cancelled consumer of the sandbox
// listing, for CheckAfterCancel against Google (optional).
const (
	EnvCancelledConsumer = "GCPMARKETPLACE_CONFORMANCE_CANCELLED_CONSUMER" // its usageReportingId
	EnvCancelledAt       = "GCPMARKETPLACE_CONFORMANCE_CANCELLED_AT"       // its cancellation, RFC 3339
)

// cancelledFromEnv is the Lifecycle FromEnv reads: the cancelled consumer
// only, as a check is all the suite does against Google with it.
func cancelledFromEnv() Lifecycle {
	id := os.Getenv(EnvCancelledConsumer)
	at, err := time.Parse(time.RFC3339Nano, os.Getenv(EnvCancelledAt))
	if id == "" || err != nil {
		return Lifecycle{}
	}
	return Lifecycle{Cancelled: Consumer{ID: id, End: at}}
}

// stopServingCodes are the CheckError codes that say a consumer cannot be
// charged (google-apis.md §4.1 and §4.2): which one Google answers for an
// ended entitlement is undocumented, so any of them passes.
var stopServingCodes = []string{"SERVICE_NOT_ACTIVATED", "BILLING_DISABLED", "PROJECT_DELETED", "CONSUMER_INVALID", "PROJECT_INVALID", "PERMISSION_DENIED"}

// CheckAfterCancel: services.check of a cancelled entitlement's consumer
// for usage after the cancellation answers a stop-serving CheckError
// ("If the customer's service is disabled before a report's startTime,
// check returns a checkError", google-apis.md §4.1), while a check of an
// interval before the cancellation (a late report's check) answers none.
// A check bills nothing, so it also runs against Google.
func CheckAfterCancel(t *testing.T, tgt Target) {
	c := tgt.Lifecycle.Cancelled
	if c.ID == "" {
		t.Skip("needs Target.Lifecycle.Cancelled (" + EnvCancelledConsumer + ", " + EnvCancelledAt + " against Google)")
	}
	ctl := ServiceControl(t, tgt)
	check := func(start, end time.Time) *sc.CheckResponse {
		t.Helper()
		op := &sc.Operation{OperationId: uuid.NewString(), OperationName: "conformance.check", ConsumerId: c.ID, StartTime: stamp(start)}
		if !end.IsZero() {
			op.EndTime = stamp(end)
		}
		resp, err := ctl.Services.Check(tgt.ServiceName, &sc.CheckRequest{Operation: op}).Context(context.Background()).Do()
		if err != nil {
			t.Fatalf("check %s at %s: %v", c.ID, op.StartTime, err)
		}
		return resp
	}
	resp := check(c.End.Add(time.Minute), time.Time{})
	if len(resp.CheckErrors) == 0 {
		t.Errorf("check of %s a minute after its cancellation: no checkErrors, want one of %v", c.ID, stopServingCodes)
	} else if code := resp.CheckErrors[0].Code; !slices.Contains(stopServingCodes, code) {
		t.Errorf("check of %s after its cancellation: code %s, want one of %v", c.ID, code, stopServingCodes)
	}
	if !c.Active.IsZero() {
		if resp := check(c.End.Add(-time.Hour), c.End); len(resp.CheckErrors) > 0 {
			t.Errorf("check of %s for the hour before its cancellation: %s, want none (late usage before the end is charged)",
				c.ID, resp.CheckErrors[0].Code)
		}
	}
}

// ReportAfterEnd: services.report refuses (a reportError for the
// operation) usage after an entitlement's end, whether it was cancelled at
// once or at the end of its term (the term's end, however late the state
// flips to CANCELLED), and usage of an interval that straddles the end ("Never report new usage after the entitlement ends",
// google-apis.md §4.1). It reports usage, so it runs only where
// Target.ReportMetric is set (never against Google).
func ReportAfterEnd(t *testing.T, tgt Target) {
	ended := map[string]Consumer{"cancelled": tgt.Lifecycle.Cancelled, "term ended": tgt.Lifecycle.TermEnded}
	if tgt.Lifecycle.TermEndedLate.ID != "" {
		ended["term ended, flipped to CANCELLED late"] = tgt.Lifecycle.TermEndedLate
	}
	for name, c := range ended {
		wantRefused(t, tgt, name, c, c.End, c.End.Add(time.Hour))
		wantRefused(t, tgt, name+", straddling the end", c, c.End.Add(-30*time.Minute), c.End.Add(30*time.Minute))
	}
}

// ReportBeforeApproval: services.report refuses usage of an entitlement
// that was never approved (its service is not enabled yet).
func ReportBeforeApproval(t *testing.T, tgt Target) {
	c := tgt.Lifecycle.NotApproved
	wantRefused(t, tgt, "not approved", c, c.End.Add(-time.Hour), c.End)
	wantRefused(t, tgt, "not approved", c, c.End, c.End.Add(time.Hour))
}

// ReportAfterReject: services.report refuses usage of an entitlement the
// provider rejected (entitlements.reject: never ACTIVE, then removed).
func ReportAfterReject(t *testing.T, tgt Target) {
	c := tgt.Lifecycle.Rejected
	wantRefused(t, tgt, "rejected", c, c.End.Add(-time.Hour), c.End)
	wantRefused(t, tgt, "rejected", c, c.End, c.End.Add(time.Hour))
}

// ReportAfterAccountDeletion: services.report refuses usage after the end
// of an entitlement whose account was deleted (the deletion cancels it).
func ReportAfterAccountDeletion(t *testing.T, tgt Target) {
	c := tgt.Lifecycle.AccountDeleted
	wantRefused(t, tgt, "account deleted", c, c.End, c.End.Add(time.Hour))
}

// LateReportBeforeEnd: after an entitlement was cancelled, services.report
// accepts usage of an interval that ended by the cancellation, sent late
// ("Unreported usage may still be reported, with a timestamp of when it
// was actually generated, which must be before the cancellation",
// google-apis.md §4.1), and in the same request refuses the operation
// whose interval runs past the cancellation: the outcome is per operation.
func LateReportBeforeEnd(t *testing.T, tgt Target) {
	c := tgt.Lifecycle.Cancelled
	if tgt.ReportMetric == "" || c.ID == "" || c.Active.IsZero() {
		t.Skip("needs Target.ReportMetric and Target.Lifecycle.Cancelled with Active (emulator only: services.report bills)")
	}
	start := c.End.Add(-time.Hour)
	if start.Before(c.Active) {
		start = c.Active
	}
	before, straddling := usageOp(tgt, c.ID, start, c.End), usageOp(tgt, c.ID, c.End.Add(-time.Minute), c.End.Add(time.Minute))
	resp, err := ServiceControl(t, tgt).Services.Report(tgt.ServiceName, &sc.ReportRequest{
		Operations: []*sc.Operation{before, straddling},
	}).Context(context.Background()).Do()
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	refused := map[string]string{}
	for _, re := range resp.ReportErrors {
		refused[re.OperationId] = fmt.Sprintf("code %d: %s", re.Status.Code, re.Status.Message)
	}
	if why, ok := refused[before.OperationId]; ok {
		t.Errorf("late report of [%s, %s), before the cancellation at %s: refused (%s), want accepted",
			before.StartTime, before.EndTime, stamp(c.End), why)
	}
	if _, ok := refused[straddling.OperationId]; !ok {
		t.Errorf("report of [%s, %s), past the cancellation at %s: accepted, want a reportError",
			straddling.StartTime, straddling.EndTime, stamp(c.End))
	}
}

// wantRefused reports one operation of c's usage over [start, end) and
// fails unless services.report answers a reportError for it.
func wantRefused(t *testing.T, tgt Target, what string, c Consumer, start, end time.Time) {
	t.Helper()
	if tgt.ReportMetric == "" || c.ID == "" {
		t.Skipf("needs Target.ReportMetric and the %s consumer in Target.Lifecycle (emulator only: services.report bills)", what)
	}
	op := usageOp(tgt, c.ID, start, end)
	resp, err := ServiceControl(t, tgt).Services.Report(tgt.ServiceName, &sc.ReportRequest{
		Operations: []*sc.Operation{op},
	}).Context(context.Background()).Do()
	if err != nil {
		t.Fatalf("report %s usage of [%s, %s): %v", what, op.StartTime, op.EndTime, err)
	}
	if len(resp.ReportErrors) == 0 {
		t.Errorf("%s consumer %s (active from %v, end %s): usage of [%s, %s) accepted, want a reportError",
			what, c.ID, c.Active, stamp(c.End), op.StartTime, op.EndTime)
	}
}

// usageOp is one operation of one unit of tgt.ReportMetric over
// [start, end), under a fresh id.
func usageOp(tgt Target, consumer string, start, end time.Time) *sc.Operation {
	one := int64(1)
	return &sc.Operation{
		OperationId: uuid.NewString(), OperationName: "conformance.report", ConsumerId: consumer,
		StartTime: stamp(start), EndTime: stamp(end),
		MetricValueSets: []*sc.MetricValueSet{{MetricName: tgt.ReportMetric, MetricValues: []*sc.MetricValue{{Int64Value: &one}}}},
	}
}

// stamp is t on the wire (google.protobuf.Timestamp's JSON form).
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
