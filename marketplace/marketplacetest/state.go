package marketplacetest

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Wire values of Account.state, Approval.state and Entitlement.state.
const (
	AccountActive = "ACCOUNT_ACTIVE"

	ApprovalPending  = "PENDING"
	ApprovalApproved = "APPROVED"
	ApprovalRejected = "REJECTED"

	StateActivationRequested       = "ENTITLEMENT_ACTIVATION_REQUESTED"
	StateActive                    = "ENTITLEMENT_ACTIVE"
	StatePendingCancellation       = "ENTITLEMENT_PENDING_CANCELLATION"
	StateCancelled                 = "ENTITLEMENT_CANCELLED"
	StatePendingPlanChange         = "ENTITLEMENT_PENDING_PLAN_CHANGE"
	StatePendingPlanChangeApproval = "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL"
	StateSuspended                 = "ENTITLEMENT_SUSPENDED"
)

// signupApproval is the approval that gates sign-up.
const signupApproval = "signup"

// maxReasonBytes is the documented limit of approval and rejection reasons.
const maxReasonBytes = 256

type account struct {
	id        string
	seq       int64
	state     string
	approvals []*approval
	// Set by SetAccountDetails: the deprecated inputProperties and, for a
	// reseller subaccount, resellerParentBillingAccount.
	inputProperties              map[string]any
	resellerParentBillingAccount string
	createTime                   time.Time
	updateTime                   time.Time
}

type approval struct {
	name       string
	state      string
	reason     string
	updateTime time.Time
}

func (a *account) approval(name string) *approval {
	for _, ap := range a.approvals {
		if ap.name == name {
			return ap
		}
	}
	return nil
}

type entitlement struct {
	id        string
	orderID   string // Entitlement.orderId
	seq       int64
	accountID string
	product   string
	plan      string
	state     string

	newPendingPlan          string
	offer                   string
	newPendingOffer         string
	offerDuration           string
	newPendingOfferDuration string
	offerEndTime            time.Time
	newOfferStartTime       time.Time
	newOfferEndTime         time.Time
	fixedEnd                time.Time // a private offer's fixed end date
	usageReportingID        string
	consumerProject         string
	messageToUser           string
	cancellationReason      string
	offerHistory            []string
	quoteExternalName       string
	inputProperties         map[string]any
	benefitIDs              []string // entitlementBenefitIds (details.go)

	autoApprove    bool
	approved       bool      // approved, waiting for its scheduled start
	scheduledStart time.Time // zero = start when approved

	createTime time.Time
	updateTime time.Time
}

// state is the emulated Procurement data. Guarded by Server.mu.
type state struct {
	accounts        map[string]*account
	entitlements    map[string]*entitlement
	seq             int64
	lastStamp       time.Time
	planChangeAtEnd bool
	consumers       map[string]*consumerLife // every usageReportingId issued, with its life (lifecycle.go)
}

func (st *state) init() {
	st.accounts = map[string]*account{}
	st.entitlements = map[string]*entitlement{}
	st.consumers = map[string]*consumerLife{}
}

// stampLocked returns the time for a change: the clock's time, but
// strictly after the previous stamp so updateTime always advances.
func (s *Server) stampLocked() time.Time {
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	if !now.After(s.state.lastStamp) {
		now = s.state.lastStamp.Add(time.Microsecond)
	}
	s.state.lastStamp = now
	return now
}

func (s *Server) newUUIDLocked() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(s.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}

func (s *Server) nextSeqLocked() int64 {
	s.state.seq++
	return s.state.seq
}

func (s *Server) accountName(id string) string {
	return "providers/" + s.cfg.providerID + "/accounts/" + id
}

func (s *Server) entitlementName(id string) string {
	return "providers/" + s.cfg.providerID + "/entitlements/" + id
}

// createAccountLocked creates an account and publishes its message.
func (s *Server) createAccountLocked() *account {
	now := s.stampLocked()
	a := &account{
		id:         s.newUUIDLocked(),
		seq:        s.nextSeqLocked(),
		state:      AccountActive,
		approvals:  []*approval{{name: signupApproval, state: ApprovalPending, updateTime: now}},
		createTime: now,
		updateTime: now,
	}
	s.state.accounts[a.id] = a
	eventType := ""
	if s.cfg.accountEventType {
		eventType = "ACCOUNT_ACTIVE"
	}
	s.publishAccountLocked("ACCOUNT_ACTIVE", eventType, a)
	return a
}

// setStateLocked moves e to a new state: it stamps updateTime and clears
// messageToUser, as Google does on every state change.
func (s *Server) setStateLocked(e *entitlement, st string) {
	e.state = st
	e.messageToUser = ""
	e.updateTime = s.stampLocked()
}

// touchLocked records a change that is not a state change.
func (s *Server) touchLocked(e *entitlement) { e.updateTime = s.stampLocked() }

// activateLocked makes a requested entitlement ACTIVE and publishes
// ENTITLEMENT_ACTIVE.
func (s *Server) activateLocked(e *entitlement) {
	start := s.clock.Now().UTC()
	if !e.scheduledStart.IsZero() {
		start = e.scheduledStart
	}
	e.approved = false
	e.newOfferStartTime = time.Time{}
	e.offerEndTime = termEnd(start, e.offerDuration, e.fixedEnd)
	s.setStateLocked(e, StateActive)
	s.consumerActivatedLocked(e, start.Truncate(time.Microsecond)) // not after updateTime
	s.publishEntitlementLocked("ENTITLEMENT_ACTIVE", e, nil)
}

// termEnd is the end of a term that starts at start.
func termEnd(start time.Time, duration string, fixed time.Time) time.Time {
	if !fixed.IsZero() {
		return fixed
	}
	if y, m, ok := parseYearMonthDuration(duration); ok {
		return start.AddDate(y, m, 0)
	}
	return time.Time{}
}

// parseYearMonthDuration parses the ISO 8601 durations Marketplace uses for
// offers ("P1Y", "P2Y3M", "P6M").
func parseYearMonthDuration(d string) (years, months int, ok bool) {
	if len(d) < 3 || d[0] != 'P' {
		return 0, 0, false
	}
	rest := d[1:]
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, 0, false
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 10000 {
			return 0, 0, false
		}
		switch rest[i] {
		case 'Y':
			years += n
		case 'M':
			months += n
		default:
			return 0, 0, false
		}
		rest = rest[i+1:]
	}
	return years, months, true
}

// runScheduledLocked activates approved entitlements whose scheduled start
// has come. Entitlements are visited in creation order so events are
// deterministic.
// It runs before every API call, so it finds the due ones without sorting
// everything and allocates nothing when none is due.
func (s *Server) runScheduledLocked() {
	now := s.clock.Now()
	var due []*entitlement
	for _, e := range s.state.entitlements {
		if e.state == StateActivationRequested && e.approved && !e.scheduledStart.After(now) {
			due = append(due, e)
		}
	}
	sortBySeq(due, func(e *entitlement) int64 { return e.seq })
	for _, e := range due {
		s.activateLocked(e)
	}
}

// cancelLocked moves e to CANCELLED and publishes ENTITLEMENT_CANCELLED.
func (s *Server) cancelLocked(e *entitlement, reason string) {
	e.newPendingPlan, e.newPendingOffer, e.newPendingOfferDuration = "", "", ""
	e.newOfferStartTime, e.newOfferEndTime = time.Time{}, time.Time{}
	e.approved = false
	e.cancellationReason = reason
	now := s.clock.Now().UTC()
	if e.offerEndTime.IsZero() || e.offerEndTime.After(now) {
		// In CANCELLED, offerEndTime is the actual end of the last offer.
		if e.offer != "" {
			e.offerEndTime = now
		}
	}
	atTermEnd := e.state == StatePendingCancellation
	s.setStateLocked(e, StateCancelled)
	// A cancellation at the term's end ends the service at the term's end
	// (offerEndTime), even when the state flips later (EndTerm called
	// after the clock passed it); undocumented: chosen because usage after
	// the term the customer cancelled must not be charged.
	end := e.updateTime
	if atTermEnd && !e.offerEndTime.IsZero() && e.offerEndTime.Before(end) {
		end = e.offerEndTime
	}
	s.consumerEndedLocked(e, end, reason)
	s.publishEntitlementLocked("ENTITLEMENT_CANCELLED", e, nil)
}

// deleteEntitlementLocked removes a cancelled entitlement and publishes
// ENTITLEMENT_DELETED. Its usageReportingId stays a known consumer (see
// outsideLife), since usage generated before the cancellation may still
// be reported.
func (s *Server) deleteEntitlementLocked(e *entitlement) {
	delete(s.state.entitlements, e.id)
	s.consumerDeletedLocked(e)
	e.updateTime = s.stampLocked()
	s.publishEntitlementLocked("ENTITLEMENT_DELETED", e, nil)
}

// applyPlanChangeLocked makes the pending plan current and publishes
// ENTITLEMENT_PLAN_CHANGED.
func (s *Server) applyPlanChangeLocked(e *entitlement) {
	e.plan = e.newPendingPlan
	if e.newPendingOffer != "" {
		e.offer = e.newPendingOffer
		e.offerHistory = append(e.offerHistory, e.offer)
	}
	if e.newPendingOfferDuration != "" {
		e.offerDuration = e.newPendingOfferDuration
	}
	e.newPendingPlan, e.newPendingOffer, e.newPendingOfferDuration = "", "", ""
	e.newOfferStartTime, e.newOfferEndTime = time.Time{}, time.Time{}
	s.setStateLocked(e, StateActive)
	s.publishEntitlementLocked("ENTITLEMENT_PLAN_CHANGED", e, nil)
}

// clearPlanChangeLocked drops a pending plan change and publishes
// ENTITLEMENT_PLAN_CHANGE_CANCELLED.
func (s *Server) clearPlanChangeLocked(e *entitlement) {
	e.newPendingPlan, e.newPendingOffer, e.newPendingOfferDuration = "", "", ""
	e.newOfferStartTime, e.newOfferEndTime = time.Time{}, time.Time{}
	s.setStateLocked(e, StateActive)
	s.publishEntitlementLocked("ENTITLEMENT_PLAN_CHANGE_CANCELLED", e, nil)
}

// sortedEntitlementsLocked returns the live entitlements in creation order.
func (s *Server) sortedEntitlementsLocked() []*entitlement {
	out := make([]*entitlement, 0, len(s.state.entitlements))
	for _, e := range s.state.entitlements {
		out = append(out, e)
	}
	sortBySeq(out, func(e *entitlement) int64 { return e.seq })
	return out
}

func (s *Server) sortedAccountsLocked() []*account {
	out := make([]*account, 0, len(s.state.accounts))
	for _, a := range s.state.accounts {
		out = append(out, a)
	}
	sortBySeq(out, func(a *account) int64 { return a.seq })
	return out
}

func sortBySeq[T any](xs []T, seq func(T) int64) {
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(seq(a), seq(b)) })
}

// knownConsumerLocked reports whether consumerID is the usageReportingId of
// an entitlement, live or deleted (whether it can be charged is
// lifeErrorLocked's answer).
func (s *Server) knownConsumerLocked(consumerID string) bool {
	return s.state.consumers[consumerID] != nil
}

// truncateReason applies the documented 256-byte limit without splitting a
// UTF-8 sequence.
func truncateReason(r string) string {
	if len(r) <= maxReasonBytes {
		return r
	}
	cut := maxReasonBytes
	for cut > 0 && r[cut]&0xC0 == 0x80 {
		cut--
	}
	return r[:cut]
}

// formatTimestamp writes t the way Google's JSON mapping of
// google.protobuf.Timestamp does: UTC, "Z", 0, 3, 6 or 9 fractional digits.
func formatTimestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return t.Format("2006-01-02T15:04:05Z")
	case ns%1e6 == 0:
		return t.Format("2006-01-02T15:04:05.000Z")
	case ns%1e3 == 0:
		return t.Format("2006-01-02T15:04:05.000000Z")
	default:
		return t.Format("2006-01-02T15:04:05.000000000Z")
	}
}

// errWrongState is returned by customer actions that the entitlement's
// state does not allow.
type wrongStateError struct {
	action, id, state string
}

func (e *wrongStateError) Error() string {
	return fmt.Sprintf("marketplacetest: %s entitlement %s: not allowed in state %s", e.action, e.id, e.state)
}

func (e *wrongStateError) Is(target error) bool { return target == ErrWrongState }
