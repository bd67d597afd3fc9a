package marketplacetest

import (
	"net/http"
	"strings"
)

// Wire types of cloudcommerceprocurement/v1 (the emulator's own, not the
// generated client's).
type wireAccount struct {
	Name       string         `json:"name,omitempty"`
	Provider   string         `json:"provider,omitempty"`
	State      string         `json:"state,omitempty"`
	Approvals  []wireApproval `json:"approvals,omitempty"`
	CreateTime string         `json:"createTime,omitempty"`
	UpdateTime string         `json:"updateTime,omitempty"`

	InputProperties              map[string]any `json:"inputProperties,omitempty"`
	ResellerParentBillingAccount string         `json:"resellerParentBillingAccount,omitempty"`
}

type wireApproval struct {
	Name       string `json:"name,omitempty"`
	State      string `json:"state,omitempty"`
	Reason     string `json:"reason,omitempty"`
	UpdateTime string `json:"updateTime,omitempty"`
}

type wireConsumer struct {
	Project string `json:"project,omitempty"`
}

type wireEntitlement struct {
	Name                    string         `json:"name,omitempty"`
	Account                 string         `json:"account,omitempty"`
	Provider                string         `json:"provider,omitempty"`
	Product                 string         `json:"product,omitempty"`
	ProductExternalName     string         `json:"productExternalName,omitempty"`
	QuoteExternalName       string         `json:"quoteExternalName,omitempty"`
	Plan                    string         `json:"plan,omitempty"`
	NewPendingPlan          string         `json:"newPendingPlan,omitempty"`
	Offer                   string         `json:"offer,omitempty"`
	NewPendingOffer         string         `json:"newPendingOffer,omitempty"`
	OfferDuration           string         `json:"offerDuration,omitempty"`
	NewPendingOfferDuration string         `json:"newPendingOfferDuration,omitempty"`
	OfferEndTime            string         `json:"offerEndTime,omitempty"`
	NewOfferStartTime       string         `json:"newOfferStartTime,omitempty"`
	NewOfferEndTime         string         `json:"newOfferEndTime,omitempty"`
	SubscriptionEndTime     string         `json:"subscriptionEndTime,omitempty"`
	OrderID                 string         `json:"orderId,omitempty"`
	EntitlementBenefitIDs   []string       `json:"entitlementBenefitIds,omitempty"`
	UsageReportingID        string         `json:"usageReportingId,omitempty"`
	Consumers               []wireConsumer `json:"consumers,omitempty"`
	MessageToUser           string         `json:"messageToUser,omitempty"`
	CancellationReason      string         `json:"cancellationReason,omitempty"`
	InputProperties         map[string]any `json:"inputProperties,omitempty"`
	State                   string         `json:"state,omitempty"`
	CreateTime              string         `json:"createTime,omitempty"`
	UpdateTime              string         `json:"updateTime,omitempty"`
}

func (s *Server) wireAccountLocked(a *account) wireAccount {
	w := wireAccount{
		Name:       s.accountName(a.id),
		Provider:   s.cfg.providerID,
		State:      a.state,
		CreateTime: formatTimestamp(a.createTime),
		UpdateTime: formatTimestamp(a.updateTime),

		InputProperties: a.inputProperties,
	}
	for _, ap := range a.approvals {
		w.Approvals = append(w.Approvals, wireApproval{
			Name: ap.name, State: ap.state, Reason: ap.reason, UpdateTime: formatTimestamp(ap.updateTime),
		})
	}
	return w
}

func (s *Server) wireEntitlementLocked(e *entitlement) wireEntitlement {
	w := wireEntitlement{
		Name:                    s.entitlementName(e.id),
		Account:                 s.accountName(e.accountID),
		Provider:                s.cfg.providerID,
		Product:                 e.product,
		ProductExternalName:     e.product,
		Plan:                    e.plan,
		NewPendingPlan:          e.newPendingPlan,
		Offer:                   e.offer,
		NewPendingOffer:         e.newPendingOffer,
		OfferDuration:           e.offerDuration,
		NewPendingOfferDuration: e.newPendingOfferDuration,
		OfferEndTime:            formatTimestamp(e.offerEndTime),
		NewOfferStartTime:       formatTimestamp(e.newOfferStartTime),
		NewOfferEndTime:         formatTimestamp(e.newOfferEndTime),
		OrderID:                 e.orderID,
		UsageReportingID:        e.usageReportingID,
		QuoteExternalName:       e.quoteExternalName,
		SubscriptionEndTime:     formatTimestamp(subscriptionEnd(e)),
		EntitlementBenefitIDs:   e.benefitIDs,
		InputProperties:         e.inputProperties,
		MessageToUser:           e.messageToUser,
		CancellationReason:      e.cancellationReason,
		State:                   e.state,
		CreateTime:              formatTimestamp(e.createTime),
		UpdateTime:              formatTimestamp(e.updateTime),
	}
	if e.consumerProject != "" {
		w.Consumers = []wireConsumer{{Project: e.consumerProject}}
	}
	return w
}

type empty struct{}

func (s *Server) procurement(rt route, r *http.Request, body []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt.provider != s.cfg.providerID {
		return nil, errPermission
	}
	s.runScheduledLocked()
	q := r.URL.Query()
	switch rt.method {
	case MethodAccountsList:
		return s.listAccountsLocked(q.Get("pageSize"), q.Get("pageToken"))
	case MethodEntitlementsList:
		return s.listEntitlementsLocked(q.Get("filter"), q.Get("pageSize"), q.Get("pageToken"))
	case MethodAccountsGet, MethodAccountsApprove, MethodAccountsReject, MethodAccountsReset:
		return s.accountMethodLocked(rt, q, body)
	default:
		return s.entitlementMethodLocked(rt, q, body)
	}
}

func (s *Server) accountMethodLocked(rt route, q map[string][]string, body []byte) (any, *apiError) {
	a := s.state.accounts[rt.id]
	switch rt.method {
	case MethodAccountsGet:
		view := ""
		if v := q["view"]; len(v) > 0 {
			view = v[0]
		}
		switch view {
		case "", "ACCOUNT_VIEW_UNSPECIFIED", "ACCOUNT_VIEW_BASIC", "ACCOUNT_VIEW_FULL":
		default:
			return nil, invalidArgument("Invalid value at 'view' (type.googleapis.com/google.cloud.commerce.partner.procurement.v1.AccountView), %q", view)
		}
		if a == nil {
			return nil, errNotFound
		}
		// FULL adds resellerParentBillingAccount (discovery document:
		// "Included in responses only for view: ACCOUNT_VIEW_FULL"); BASIC
		// and the default leave it out.
		w := s.wireAccountLocked(a)
		if view == "ACCOUNT_VIEW_FULL" {
			w.ResellerParentBillingAccount = a.resellerParentBillingAccount
		}
		return w, nil
	case MethodAccountsApprove, MethodAccountsReject:
		return s.decideAccountLocked(rt.method, a, body)
	case MethodAccountsReset:
		return s.resetAccountLocked(a, body)
	}
	return nil, errNotFound
}

// decideAccountLocked serves accounts.approve and accounts.reject.
func (s *Server) decideAccountLocked(m Method, a *account, body []byte) (any, *apiError) {
	var req struct {
		ApprovalName string            `json:"approvalName"`
		Properties   map[string]string `json:"properties"`
		Reason       string            `json:"reason"`
	}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if m == MethodAccountsReject && req.Properties != nil {
		return nil, invalidArgument("Invalid JSON payload received. Unknown name \"properties\": Cannot find field.")
	}
	if a == nil {
		return nil, errNotFound
	}
	name := req.ApprovalName
	if name == "" {
		name = signupApproval // the only approval an account has
	}
	ap := a.approval(name)
	if ap == nil {
		return nil, invalidArgument("Approval %q does not exist on %s.", shorten(name, 64), s.accountName(a.id))
	}
	target := ApprovalApproved
	if m == MethodAccountsReject {
		target = ApprovalRejected
	}
	if ap.state == target {
		return nil, errPrecondition
	}
	now := s.stampLocked()
	ap.state, ap.reason, ap.updateTime = target, truncateReason(req.Reason), now
	a.updateTime = now
	return empty{}, nil
}

// resetAccountLocked serves accounts.reset.
func (s *Server) resetAccountLocked(a *account, body []byte) (any, *apiError) {
	var req struct{}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if a == nil {
		return nil, errNotFound
	}
	now := s.stampLocked()
	for _, ap := range a.approvals {
		ap.state, ap.reason, ap.updateTime = ApprovalPending, "", now
	}
	a.updateTime = now
	for _, e := range s.sortedEntitlementsLocked() {
		if e.accountID == a.id && e.state != StateCancelled {
			s.cancelLocked(e, "unknown")
		}
	}
	return empty{}, nil
}

func (s *Server) entitlementMethodLocked(rt route, q map[string][]string, body []byte) (any, *apiError) {
	e := s.state.entitlements[rt.id]
	switch rt.method {
	case MethodEntitlementsGet:
		if e == nil {
			return nil, errNotFound
		}
		return s.wireEntitlementLocked(e), nil
	case MethodEntitlementsApprove:
		return s.approveEntitlementLocked(e, body)
	case MethodEntitlementsReject:
		return s.rejectEntitlementLocked(e, body)
	case MethodEntitlementsApprovePlanChange, MethodEntitlementsRejectPlanChange:
		return s.decidePlanChangeLocked(rt.method, e, body)
	case MethodEntitlementsPatch:
		return s.patchEntitlementLocked(e, q, body)
	case MethodEntitlementsSuspend:
		return s.suspendEntitlementLocked(e, body)
	}
	return nil, errNotFound
}

// approveEntitlementLocked serves entitlements.approve.
func (s *Server) approveEntitlementLocked(e *entitlement, body []byte) (any, *apiError) {
	var req struct {
		EntitlementMigrated string            `json:"entitlementMigrated"`
		Properties          map[string]string `json:"properties"`
	}
	if ae := decodeStrict(body, &req); ae != nil {
		return nil, ae
	}
	if req.EntitlementMigrated != "" && !strings.HasPrefix(req.EntitlementMigrated, "providers/") {
		return nil, invalidArgument("entitlement_migrated must be of the form providers/{provider}/entitlements/{entitlement}.")
	}
	if e == nil {
		return nil, errNotFound
	}
	if e.state != StateActivationRequested || e.approved {
		return nil, errPrecondition
	}
	if a := s.state.accounts[e.accountID]; a == nil || a.approval(signupApproval) == nil || a.approval(signupApproval).state != ApprovalApproved {
		return nil, errPrecondition
	}
	if e.scheduledStart.After(s.clock.Now()) {
		e.approved = true
		e.newOfferStartTime = e.scheduledStart
		e.offerEndTime = termEnd(e.scheduledStart, e.offerDuration, e.fixedEnd)
		s.touchLocked(e)
		return empty{}, nil
	}
	s.activateLocked(e)
	return empty{}, nil
}

// rejectEntitlementLocked serves entitlements.reject.
func (s *Server) rejectEntitlementLocked(e *entitlement, body []byte) (any, *apiError) {
	var req struct {
		Reason string `json:"reason"`
	}
	if ae := decodeStrict(body, &req); ae != nil {
		return nil, ae
	}
	if e == nil {
		return nil, errNotFound
	}
	if e.state != StateActivationRequested || e.approved {
		return nil, errPrecondition
	}
	s.cancelLocked(e, truncateReason(req.Reason))
	s.deleteEntitlementLocked(e)
	return empty{}, nil
}

// decidePlanChangeLocked serves entitlements.approvePlanChange and entitlements.rejectPlanChange.
func (s *Server) decidePlanChangeLocked(m Method, e *entitlement, body []byte) (any, *apiError) {
	var req struct {
		PendingPlanName string `json:"pendingPlanName"`
		Reason          string `json:"reason"`
	}
	if ae := decodeStrict(body, &req); ae != nil {
		return nil, ae
	}
	if m == MethodEntitlementsApprovePlanChange && req.Reason != "" {
		return nil, invalidArgument("Invalid JSON payload received. Unknown name \"reason\": Cannot find field.")
	}
	if req.PendingPlanName == "" {
		return nil, invalidArgument("pending_plan_name is required.")
	}
	if e == nil {
		return nil, errNotFound
	}
	if e.state != StatePendingPlanChangeApproval || e.newPendingPlan != req.PendingPlanName {
		return nil, errPrecondition
	}
	if m == MethodEntitlementsRejectPlanChange {
		s.clearPlanChangeLocked(e)
		return empty{}, nil
	}
	if s.state.planChangeAtEnd {
		start := e.offerEndTime
		if start.IsZero() {
			start = s.clock.Now().UTC()
		}
		e.newOfferStartTime = start
		s.setStateLocked(e, StatePendingPlanChange)
		return empty{}, nil
	}
	s.applyPlanChangeLocked(e)
	return empty{}, nil
}

// patchEntitlementLocked serves entitlements.patch.
func (s *Server) patchEntitlementLocked(e *entitlement, q map[string][]string, body []byte) (any, *apiError) {
	var mask string
	if v := q["updateMask"]; len(v) > 0 {
		mask = v[0]
	}
	var req wireEntitlement
	if ae := decodeStrict(body, &req); ae != nil {
		return nil, ae
	}
	if mask == "" {
		// AIP-134: without update_mask the mask is the populated fields.
		// messageToUser is the only updatable one; output-only fields in
		// the body are ignored (AIP-203). Nothing populated: no change.
		if req.MessageToUser == "" {
			if e == nil {
				return nil, errNotFound
			}
			return s.wireEntitlementLocked(e), nil
		}
		mask = "messageToUser"
	}
	for _, f := range strings.Split(mask, ",") {
		switch strings.TrimSpace(f) {
		case "messageToUser", "message_to_user":
		default:
			return nil, invalidArgument("Invalid update_mask path %q: the only updatable field is messageToUser.", shorten(strings.TrimSpace(f), 64))
		}
	}
	if e == nil {
		return nil, errNotFound
	}
	if e.state != StateActivationRequested && e.state != StatePendingPlanChangeApproval {
		return nil, errPrecondition
	}
	e.messageToUser = req.MessageToUser
	s.touchLocked(e)
	return s.wireEntitlementLocked(e), nil
}

// suspendEntitlementLocked serves entitlements.suspend.
func (s *Server) suspendEntitlementLocked(e *entitlement, body []byte) (any, *apiError) {
	var req struct {
		Reason string `json:"reason"`
	}
	if ae := decodeStrict(body, &req); ae != nil {
		return nil, ae
	}
	if e == nil {
		return nil, errNotFound
	}
	return nil, errUnsupported
}
