package marketplacetest

// This file derives each Service Control consumer's life from its
// entitlement (issue 21, item 1): a usageReportingId can be charged only
// for usage inside [activation, end). Each rule names its source.

import (
	"fmt"
	"time"
)

// consumerLife is the billable life of one usageReportingId. Guarded by
// Server.mu.
type consumerLife struct {
	entitlementID string
	// active is when the entitlement became ENTITLEMENT_ACTIVE (its
	// scheduled start, if it had one); zero while it never was.
	active time.Time
	// end is when the entitlement stopped being billable: its cancellation
	// (immediate, at term end, by entitlements.reject or by the account's
	// deletion); zero while it lives.
	end     time.Time
	reason  string // why it ended: the cancellationReason
	deleted bool   // the entitlement was deleted (ENTITLEMENT_DELETED)
}

// ConsumerLife is the billable life of a usageReportingId as the emulator
// derives it from its entitlement: Service Control accepts usage of
// [Active, End) only.
type ConsumerLife struct {
	EntitlementID string
	// Active is when the entitlement became ACTIVE; zero if it never did
	// (awaiting approval, rejected, cancelled before its start).
	Active time.Time
	// End is when it was cancelled (immediately, at term end, rejected, or
	// with its account); zero while it lives.
	End time.Time
	// Reason is the cancellationReason ("user-cancelled", "account-closed",
	// a rejection's reason, ...); empty while it lives.
	Reason string
	// Deleted is true once the entitlement was deleted.
	Deleted bool
}

// ConsumerLife returns the life of consumerID (any of the forms
// services.check accepts), or false if no entitlement ever had it as its
// usageReportingId.
func (s *Server) ConsumerLife(consumerID string) (ConsumerLife, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
	c := s.state.consumers[canonicalConsumer(consumerID)]
	if c == nil {
		return ConsumerLife{}, false
	}
	return ConsumerLife{EntitlementID: c.entitlementID, Active: c.active, End: c.end, Reason: c.reason, Deleted: c.deleted}, true
}

// The lifecycle hooks: state.go calls them on every activation,
// cancellation and deletion, so no path can skip them.

func (s *Server) consumerActivatedLocked(e *entitlement, at time.Time) {
	if c := s.state.consumers[e.usageReportingID]; c != nil && c.active.IsZero() && c.end.IsZero() {
		c.active = at
	}
}

func (s *Server) consumerEndedLocked(e *entitlement, at time.Time, reason string) {
	if c := s.state.consumers[e.usageReportingID]; c != nil && c.end.IsZero() {
		c.end, c.reason = at, reason
	}
}

func (s *Server) consumerDeletedLocked(e *entitlement) {
	if c := s.state.consumers[e.usageReportingID]; c != nil {
		c.deleted = true
	}
}

// inactiveCode is the CheckError code of a known consumer outside its
// life: SERVICE_NOT_ACTIVATED before activation, after any end, and after
// deletion alike.
//
// Source: google-apis.md §4.1 ("If the customer's service is disabled
// before a report's startTime, check returns a checkError and the customer
// isn't charged for that interval") and §4.2 (CheckError codes, of which
// SERVICE_NOT_ACTIVATED is the one for a service not enabled for the
// consumer). Inferred: which code Google answers is not documented;
// SERVICE_NOT_ACTIVATED is chosen because Marketplace enables the service
// for the consumer at activation and disables it at the end, and it is in
// the stop-serving list of §4.1. A deleted entitlement's consumer stays
// known (not CONSUMER_INVALID) because late reports of usage before its
// end are still accepted (see outsideLife).
const inactiveCode = "SERVICE_NOT_ACTIVATED"

// outsideLife says why the usage of [start, end) by consumer c cannot be
// charged, or "" if it can. end may equal start (an instant, as a check
// without endTime). The rules:
//
//   - Usage before activation, or of a consumer never activated, is
//     refused: the service is not enabled before ENTITLEMENT_ACTIVE
//     (google-apis.md §4.1, "service is disabled": inferred for the time
//     before approval, when no service is enabled yet).
//   - Usage at or after the end is refused, even partly (an interval that
//     straddles the end): "Never report new usage after the entitlement
//     ends" and late usage "must be before the cancellation"
//     (google-apis.md §4.1, Google's "Best practices for usage reporting").
//     Partly-outside intervals are refused whole because Service Control
//     cannot split an operation's value.
//   - Usage strictly before the end is accepted however late it arrives,
//     after the end and after deletion too (the grace). Google asks for
//     reports "within one hour" of the usage and, after a cancellation,
//     within one hour of it, but partner engineers can extend that and
//     whether Service Control refuses a later report is undocumented:
//     chosen to accept, because refusing would only under-bill, while the
//     money at stake (billing after the end) is refused by the rule above.
func outsideLife(c *consumerLife, start, end time.Time) string {
	switch {
	case c.active.IsZero():
		return "the entitlement was never activated"
	case start.Before(c.active):
		return fmt.Sprintf("usage starts at %s, before the entitlement's activation at %s",
			formatTimestamp(start), formatTimestamp(c.active))
	case !c.end.IsZero() && (!start.Before(c.end) || end.After(c.end)):
		return fmt.Sprintf("usage of [%s, %s) is not before the entitlement's end at %s",
			formatTimestamp(start), formatTimestamp(end), formatTimestamp(c.end))
	}
	return ""
}

// lifeErrorLocked is why the operation's usage (its interval and every
// metric value's own) cannot be charged to its consumer, or "" if it can
// or the consumer is unknown (answered elsewhere).
func (s *Server) lifeErrorLocked(consumerID string, start, end time.Time, vals []ReportedMetric) string {
	c := s.state.consumers[consumerID]
	if c == nil {
		return ""
	}
	if end.Before(start) {
		end = start
	}
	if why := outsideLife(c, start, end); why != "" {
		return why
	}
	for _, v := range vals {
		if why := outsideLife(c, v.Start, v.End); why != "" {
			return fmt.Sprintf("metric %s: %s", shorten(v.Name, 100), why)
		}
	}
	return ""
}
