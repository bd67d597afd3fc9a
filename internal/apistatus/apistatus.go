// Package apistatus maps HTTP status codes of Google's JSON APIs to the
// canonical status names (google.rpc.Code) that Google's error bodies carry,
// so that procurement errors and usage metrics name a failure the same way.
package apistatus

import "net/http"

// FromHTTP is the canonical status for an HTTP code when the error body
// carries none, after https://cloud.google.com/apis/design/errors#handling_errors.
// Unlisted 5xx codes are INTERNAL and anything else UNKNOWN.
func FromHTTP(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if code >= 500 {
		return "INTERNAL"
	}
	return "UNKNOWN"
}

// Valid reports whether s is one of the 16 canonical status names. Callers
// use it to keep a server's free-form text out of metric attributes.
func Valid(s string) bool {
	switch s {
	case "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
		"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED":
		return true
	}
	return false
}
