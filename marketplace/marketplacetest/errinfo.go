package marketplacetest

import (
	"net/http"
	"strings"
)

// wireErrorInfo is google.rpc.ErrorInfo as Google's JSON error format
// carries it in error.details: the "@type" URL, then reason, domain and
// metadata (cloud.google.com/apis/design/errors, "HTTP mapping"; AIP-193,
// which makes ErrorInfo part of every error response).
type wireErrorInfo struct {
	Type     string            `json:"@type"`
	Reason   string            `json:"reason"`
	Domain   string            `json:"domain"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

const errorInfoType = "type.googleapis.com/google.rpc.ErrorInfo"

// errorInfo is the ErrorInfo of an error with this status on request r.
//
//   - PERMISSION_DENIED: reason IAM_PERMISSION_DENIED, domain
//     iam.googleapis.com, metadata permission and resource, as Google's IAM
//     errors carry them (the reason named in issue 21 and on Google's
//     "Troubleshoot permission errors" page).
//   - UNAUTHENTICATED: reason CREDENTIALS_MISSING (no Authorization
//     header) or ACCESS_TOKEN_TYPE_UNSUPPORTED, domain googleapis.com,
//     metadata service (auth.go).
//   - RESOURCE_EXHAUSTED: reason RATE_LIMIT_EXCEEDED, domain googleapis.com,
//     metadata service, as Google's quota errors carry them.
//   - Any other status: undocumented for these two APIs; the reason is the
//     status name and the domain the API's host, chosen because AIP-193
//     requires an ErrorInfo on every error and a stable reason is what code
//     branching on details needs. Google may send other reasons here.
func errorInfo(r *http.Request, status string) wireErrorInfo {
	rt, ok := parseRoute(r)
	host := "googleapis.com"
	if ok {
		host, _, _ = strings.Cut(string(rt.method), ".")
		host += ".googleapis.com"
	}
	switch status {
	case "PERMISSION_DENIED":
		md := map[string]string{}
		if ok {
			md["permission"], md["resource"] = iamPermission(rt)
		}
		return wireErrorInfo{Type: errorInfoType, Reason: "IAM_PERMISSION_DENIED", Domain: "iam.googleapis.com", Metadata: md}
	case "UNAUTHENTICATED":
		// Google's front end: CREDENTIALS_MISSING without an Authorization
		// header, ACCESS_TOKEN_TYPE_UNSUPPORTED for a credential that is not
		// an OAuth 2 access token, domain googleapis.com (the reasons
		// Google's 401 bodies carry; not in these APIs' reference).
		reason := "CREDENTIALS_MISSING"
		if r.Header.Get("Authorization") != "" {
			reason = "ACCESS_TOKEN_TYPE_UNSUPPORTED"
		}
		return wireErrorInfo{Type: errorInfoType, Reason: reason, Domain: "googleapis.com", Metadata: map[string]string{"service": host}}
	case "RESOURCE_EXHAUSTED":
		return wireErrorInfo{Type: errorInfoType, Reason: "RATE_LIMIT_EXCEEDED", Domain: "googleapis.com", Metadata: map[string]string{"service": host}}
	}
	return wireErrorInfo{Type: errorInfoType, Reason: status, Domain: host, Metadata: map[string]string{"service": host}}
}

// iamPermission is the IAM permission a method needs and the resource it is
// checked on. Procurement: commerceprocurement.provider<Collection>.<verb>
// (the approve and reject method reference pages name
// commerceprocurement.providerEntitlements.approve and .reject; the other
// verbs follow the same pattern, undocumented). Service Control:
// servicemanagement.services.check and .report on services/<name>.
func iamPermission(rt route) (permission, resource string) {
	parts := strings.Split(string(rt.method), ".")
	verb := parts[len(parts)-1]
	if rt.service != "" {
		return "servicemanagement.services." + verb, "services/" + rt.service
	}
	switch verb {
	case "approvePlanChange":
		verb = "approve"
	case "rejectPlanChange":
		verb = "reject"
	case "patch":
		verb = "update"
	}
	collection := parts[len(parts)-2] // "accounts" or "entitlements"
	collection = "provider" + strings.ToUpper(collection[:1]) + collection[1:]
	return "commerceprocurement." + collection + "." + verb, "providers/" + rt.provider
}
