// Package opshttp is the plumbing of the examples' operator endpoints: a
// bearer-token guard and JSON replies. Put the endpoints behind your SSO or
// IAP as well.
package opshttp

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
)

// Guard serves h only to requests with "Authorization: Bearer <token>",
// compared in constant time, and answers 401 to others. With an empty token
// the endpoints are disabled: every request gets 403 and enable, which says
// how to set a token.
func Guard(token, enable string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.Error(w, "operator endpoints are disabled: "+enable, http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "operator token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteJSON replies v as indented JSON or, when err is not nil,
// {"error": "<err>"} with the status statusOf(err) (500 when statusOf is nil).
func WriteJSON(w http.ResponseWriter, v any, err error, statusOf func(error) int) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		if statusOf != nil {
			status = statusOf(err)
		}
		w.WriteHeader(status)
		v = map[string]string{"error": err.Error()}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
