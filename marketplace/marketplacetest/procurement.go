package marketplacetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// route is a parsed API request path.
type route struct {
	method   Method
	provider string // Procurement
	id       string // account or entitlement id
	service  string // Service Control
}

// parseRoute maps a request to the API method it calls. The generated
// clients expand {+name} without escaping, so names arrive as plain path
// segments; custom verbs follow a colon on the last segment.
func parseRoute(r *http.Request) (route, bool) {
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return route{}, false
	}
	segs := strings.Split(p, "/")
	if len(segs) == 2 && segs[0] == "services" && r.Method == http.MethodPost {
		name, verb, _ := strings.Cut(segs[1], ":")
		switch verb {
		case "check":
			return route{method: MethodServicesCheck, service: name}, name != ""
		case "report":
			return route{method: MethodServicesReport, service: name}, name != ""
		}
		return route{}, false
	}
	if len(segs) < 3 || segs[0] != "providers" || segs[1] == "" {
		return route{}, false
	}
	rt := route{provider: segs[1]}
	coll := segs[2]
	if len(segs) == 3 {
		if r.Method != http.MethodGet {
			return route{}, false
		}
		switch coll {
		case "accounts":
			rt.method = MethodAccountsList
		case "entitlements":
			rt.method = MethodEntitlementsList
		default:
			return route{}, false
		}
		return rt, true
	}
	if len(segs) != 4 {
		return route{}, false
	}
	id, verb, hasVerb := strings.Cut(segs[3], ":")
	if id == "" {
		return route{}, false
	}
	rt.id = id
	type key struct{ coll, httpMethod, verb string }
	methods := map[key]Method{
		{"accounts", http.MethodGet, ""}:                       MethodAccountsGet,
		{"accounts", http.MethodPost, "approve"}:               MethodAccountsApprove,
		{"accounts", http.MethodPost, "reject"}:                MethodAccountsReject,
		{"accounts", http.MethodPost, "reset"}:                 MethodAccountsReset,
		{"entitlements", http.MethodGet, ""}:                   MethodEntitlementsGet,
		{"entitlements", http.MethodPatch, ""}:                 MethodEntitlementsPatch,
		{"entitlements", http.MethodPost, "approve"}:           MethodEntitlementsApprove,
		{"entitlements", http.MethodPost, "reject"}:            MethodEntitlementsReject,
		{"entitlements", http.MethodPost, "approvePlanChange"}: MethodEntitlementsApprovePlanChange,
		{"entitlements", http.MethodPost, "rejectPlanChange"}:  MethodEntitlementsRejectPlanChange,
		{"entitlements", http.MethodPost, "suspend"}:           MethodEntitlementsSuspend,
	}
	if hasVerb && verb == "" {
		return route{}, false
	}
	m, ok := methods[key{coll, r.Method, verb}]
	if !ok {
		return route{}, false
	}
	rt.method = m
	return rt, true
}

// apiError is an error answered in Google's JSON error shape.
type apiError struct {
	code    int
	status  string
	message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.code, e.status, e.message) }

func invalidArgument(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "INVALID_ARGUMENT", fmt.Sprintf(format, args...)}
}

var (
	errPrecondition = &apiError{http.StatusBadRequest, "FAILED_PRECONDITION", "Precondition check failed."}
	errPermission   = &apiError{http.StatusForbidden, "PERMISSION_DENIED", "The caller does not have permission"}
	errNotFound     = &apiError{http.StatusNotFound, "NOT_FOUND", "Requested entity was not found."}
	errUnsupported  = &apiError{http.StatusNotImplemented, "UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."}
)

type wireErrorBody struct {
	Error wireErrorStatus `json:"error"`
}

type wireErrorStatus struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Status  string          `json:"status"`
	Details []wireErrorInfo `json:"details,omitempty"`
}

// writeError answers an error of request r in Google's JSON error format,
// with its ErrorInfo in details.
func writeError(w http.ResponseWriter, r *http.Request, code int, status, message string) {
	writeJSON(w, code, wireErrorBody{Error: wireErrorStatus{
		Code: code, Message: message, Status: status,
		Details: []wireErrorInfo{errorInfo(r, status)},
	}})
}

func writeAPIError(w http.ResponseWriter, r *http.Request, e *apiError) {
	writeError(w, r, e.code, e.status, e.message)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// systemParams are the query parameters every Google API accepts.
var systemParams = map[string]bool{
	"alt": true, "prettyPrint": true, "fields": true, "key": true, "quotaUser": true,
	"$.xgafv": true, "callback": true, "upload_protocol": true, "uploadType": true,
	"access_token": true, "oauth_token": true, "userIp": true,
}

var methodParams = map[Method][]string{
	MethodAccountsGet:       {"view"},
	MethodAccountsList:      {"pageSize", "pageToken"},
	MethodEntitlementsList:  {"filter", "pageSize", "pageToken"},
	MethodEntitlementsPatch: {"updateMask"},
}

// checkQuery refuses unknown query parameters and renames proto field names
// (page_size) to their JSON names (pageSize) in r, as Google binds query
// parameters by either name (the proto3 JSON mapping; see bindKeys).
func checkQuery(r *http.Request, m Method) *apiError {
	q := r.URL.Query()
	renamed := false
	for name := range q {
		if systemParams[name] {
			continue
		}
		known := slices.Contains(methodParams[m], name)
		if camel := lowerCamel(name); !known && strings.Contains(name, "_") && slices.Contains(methodParams[m], camel) {
			if _, both := q[camel]; both {
				return invalidArgument("Invalid JSON payload received. Duplicate field %q.", name)
			}
			q[camel], known, renamed = q[name], true, true
			delete(q, name)
		}
		if !known {
			return invalidArgument("Invalid JSON payload received. Unknown name %q: Cannot bind query parameter. Field %q could not be found in request message.", name, name)
		}
	}
	if alt := q.Get("alt"); alt != "" && alt != "json" {
		return invalidArgument("Invalid value at 'alt', %q", alt)
	}
	if renamed {
		r.URL.RawQuery = q.Encode()
	}
	return nil
}

// maxBodyBytes bounds what the emulator reads of a request body. Service
// Control's documented 1 MB limit is enforced separately.
const maxBodyBytes = 8 << 20

// readBody reads a request body, reporting bodies over limit as 400.
func readBody(r *http.Request, limit int64) ([]byte, *apiError) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, invalidArgument("Invalid JSON payload received. %v", err)
	}
	if int64(len(b)) > limit {
		return nil, invalidArgument("Request payload size exceeds the limit: %d bytes.", limit)
	}
	return b, nil
}

// decodeStrict decodes a JSON request body into v, rejecting unknown
// fields and trailing data the way Google's front end does. An empty body
// is an empty message.
func decodeStrict(b []byte, v any) *apiError {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	b, e := bindBody(b, v)
	if e != nil {
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return invalidArgument("Invalid JSON payload received. Unknown name %s: Cannot find field.", name)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return invalidArgument("Invalid value at '%s' (%s), %s", te.Field, te.Type, te.Value)
		}
		return invalidArgument("Invalid JSON payload received. %s", shorten(msg, 120))
	}
	if dec.More() {
		return invalidArgument("Invalid JSON payload received. Unexpected data after the message.")
	}
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Wire types of cloudcommerceprocurement/v1 (the emulator's own, not the
// generated client's).
type wireAccount struct {
	Name       string         `json:"name,omitempty"`
	Provider   string         `json:"provider,omitempty"`
	State      string         `json:"state,omitempty"`
	Approvals  []wireApproval `json:"approvals,omitempty"`
	CreateTime string         `json:"createTime,omitempty"`
	UpdateTime string         `json:"updateTime,omitempty"`
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
		OrderID:                 e.id,
		UsageReportingID:        e.usageReportingID,
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

// serveAPI serves every /v1/ path: Procurement and Service Control.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, ok := parseRoute(r)
	if !ok {
		writeError(w, r, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Method not found: %s %s", r.Method, shorten(r.URL.Path, 200)))
		return
	}
	if e := checkQuery(r, rt.method); e != nil {
		writeAPIError(w, r, e)
		return
	}
	sel, e := parseFields(r.URL.Query().Get("fields"))
	if e != nil {
		writeAPIError(w, r, e)
		return
	}
	limit := int64(maxBodyBytes)
	body, e := readBody(r, limit)
	if e != nil {
		writeAPIError(w, r, e)
		return
	}
	var resp any
	switch rt.method {
	case MethodServicesCheck:
		resp, e = s.serviceCheck(rt, body)
	case MethodServicesReport:
		resp, e = s.serviceReport(rt, body)
	default:
		resp, e = s.procurement(rt, r, body)
	}
	if e != nil {
		writeAPIError(w, r, e)
		return
	}
	if sel != nil {
		// partial fails only where writeJSON fails too (answering 500).
		if resp, err := partial(resp, sel); err == nil {
			writeJSON(w, http.StatusOK, resp)
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
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
		// FULL adds only resellerParentBillingAccount, which emulated
		// accounts (never reseller subaccounts) do not have.
		return s.wireAccountLocked(a), nil
	case MethodAccountsApprove, MethodAccountsReject:
		var req struct {
			ApprovalName string            `json:"approvalName"`
			Properties   map[string]string `json:"properties"`
			Reason       string            `json:"reason"`
		}
		if e := decodeStrict(body, &req); e != nil {
			return nil, e
		}
		if rt.method == MethodAccountsReject && req.Properties != nil {
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
		if rt.method == MethodAccountsReject {
			target = ApprovalRejected
		}
		if ap.state == target {
			return nil, errPrecondition
		}
		now := s.stampLocked()
		ap.state, ap.reason, ap.updateTime = target, truncateReason(req.Reason), now
		a.updateTime = now
		return empty{}, nil
	case MethodAccountsReset:
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
	return nil, errNotFound
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

	case MethodEntitlementsReject:
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

	case MethodEntitlementsApprovePlanChange, MethodEntitlementsRejectPlanChange:
		var req struct {
			PendingPlanName string `json:"pendingPlanName"`
			Reason          string `json:"reason"`
		}
		if ae := decodeStrict(body, &req); ae != nil {
			return nil, ae
		}
		if rt.method == MethodEntitlementsApprovePlanChange && req.Reason != "" {
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
		if rt.method == MethodEntitlementsRejectPlanChange {
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

	case MethodEntitlementsPatch:
		var mask string
		if v := q["updateMask"]; len(v) > 0 {
			mask = v[0]
		}
		if mask == "" {
			return nil, invalidArgument("update_mask is required; the only updatable field is messageToUser.")
		}
		for _, f := range strings.Split(mask, ",") {
			switch strings.TrimSpace(f) {
			case "messageToUser", "message_to_user":
			default:
				return nil, invalidArgument("Invalid update_mask path %q: the only updatable field is messageToUser.", shorten(strings.TrimSpace(f), 64))
			}
		}
		var req wireEntitlement
		if ae := decodeStrict(body, &req); ae != nil {
			return nil, ae
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

	case MethodEntitlementsSuspend:
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
	return nil, errNotFound
}

// Paging.

const (
	accountsDefaultPageSize     = 25
	accountsMaxPageSize         = 200
	entitlementsDefaultPageSize = 200
	entitlementsMaxPageSize     = 200
)

func parsePageSize(v string, def, max int) (int, *apiError) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, invalidArgument("Invalid value at 'page_size' (TYPE_INT32), %q", shorten(v, 32))
	}
	switch {
	case n < 0:
		return 0, invalidArgument("page_size must not be negative.")
	case n == 0:
		return def, nil
	case n > int64(max):
		return max, nil
	}
	return int(n), nil
}

// A page token names the last resource of the previous page by its creation
// sequence (so it survives inserts and deletes) and binds the list's kind
// and filter.
func pageToken(kind, filter string, afterSeq int64) string {
	raw := kind + "\x00" + filter + "\x00" + strconv.FormatInt(afterSeq, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parsePageToken(tok, kind, filter string) (int64, *apiError) {
	if tok == "" {
		return 0, nil
	}
	bad := invalidArgument("Invalid page token.")
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[0] != kind {
		return 0, bad
	}
	if parts[1] != filter {
		return 0, invalidArgument("The page token was issued for a different filter.")
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return 0, bad
	}
	return seq, nil
}

func (s *Server) listAccountsLocked(size, tok string) (any, *apiError) {
	n, e := parsePageSize(size, accountsDefaultPageSize, accountsMaxPageSize)
	if e != nil {
		return nil, e
	}
	after, e := parsePageToken(tok, "accounts", "")
	if e != nil {
		return nil, e
	}
	var resp struct {
		Accounts      []wireAccount `json:"accounts,omitempty"`
		NextPageToken string        `json:"nextPageToken,omitempty"`
	}
	all := s.sortedAccountsLocked()
	for i, a := range all {
		if a.seq <= after {
			continue
		}
		if len(resp.Accounts) == n {
			resp.NextPageToken = pageToken("accounts", "", all[i-1].seq)
			break
		}
		resp.Accounts = append(resp.Accounts, s.wireAccountLocked(a))
	}
	return resp, nil
}

func (s *Server) listEntitlementsLocked(filter, size, tok string) (any, *apiError) {
	n, e := parsePageSize(size, entitlementsDefaultPageSize, entitlementsMaxPageSize)
	if e != nil {
		return nil, e
	}
	f, err := parseFilter(filter)
	if err != nil {
		return nil, invalidArgument("%s", err.Error())
	}
	after, e := parsePageToken(tok, "entitlements", filter)
	if e != nil {
		return nil, e
	}
	var resp struct {
		Entitlements  []wireEntitlement `json:"entitlements,omitempty"`
		NextPageToken string            `json:"nextPageToken,omitempty"`
	}
	var last int64
	for _, ent := range s.sortedEntitlementsLocked() {
		if ent.seq <= after || !f.match(s.filterAttrs(ent)) {
			continue
		}
		if len(resp.Entitlements) == n {
			resp.NextPageToken = pageToken("entitlements", filter, last)
			break
		}
		resp.Entitlements = append(resp.Entitlements, s.wireEntitlementLocked(ent))
		last = ent.seq
	}
	return resp, nil
}

// filterAttrs gives filter.go the values of an entitlement's filterable
// attributes (canonical names).
func (s *Server) filterAttrs(e *entitlement) func(string) []string {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	return func(name string) []string {
		switch name {
		case "account":
			return []string{e.accountID}
		case "product", "product_external_name", "services":
			return one(e.product)
		case "offer":
			return one(e.offer)
		case "new_pending_offer":
			return one(e.newPendingOffer)
		case "plan":
			return one(e.plan)
		case "new_pending_plan":
			return one(e.newPendingPlan)
		case "state":
			return []string{e.state}
		case "consumers.project":
			return one(e.consumerProject)
		case "change_history.new_offer":
			return append([]string(nil), e.offerHistory...)
		}
		// customer_billing_account, quote_external_name: emulated
		// entitlements have none.
		return nil
	}
}
