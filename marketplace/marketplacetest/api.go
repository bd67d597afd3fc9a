package marketplacetest

// This file is the HTTP front of both emulated APIs (Procurement and Service
// Control): routing, the checks Google's front end makes on every request,
// and Google's JSON error shape.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
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

// serveAPI serves every /v1/ path: Procurement and Service Control.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, ok := parseRoute(r)
	if !ok {
		writeError(w, r, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Method not found: %s %s", r.Method, shorten(r.URL.Path, 200)))
		return
	}
	if e := authenticate(r); e != nil {
		writeAPIError(w, r, e)
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
