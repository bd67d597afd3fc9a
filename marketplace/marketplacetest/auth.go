package marketplacetest

// This file is the authentication Google's front end requires on
// Procurement and Service Control (issue 21, item 2).

import (
	"net/http"
	"strings"
)

// AccessToken is the OAuth 2 access token the emulator's ClientOptions
// send. Procurement and Service Control answer 401 UNAUTHENTICATED to a
// request without "Authorization: Bearer <token>", as Google does; the
// emulator cannot verify a Google token, so it accepts any non-empty bearer
// token (undocumented how Google checks one: chosen so that a missing
// credential, the wiring mistake a test can catch, fails as at Google,
// while a client with its own token source still works). Pub/Sub (pstest),
// the key endpoints and the control API need no token.
const AccessToken = "marketplacetest-access-token"

// AuthTransport wraps base (http.DefaultTransport when nil) so that every
// request carries "Authorization: Bearer AccessToken" unless it already has
// an Authorization header. A client built with option.WithHTTPClient
// ignores token sources, so a test that brings its own HTTP client wraps
// its transport with this.
func AuthTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return bearerTransport{base: base}
}

type bearerTransport struct{ base http.RoundTripper }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+AccessToken)
	}
	return b.base.RoundTrip(r)
}

// Google's 401 messages, as its front end answers a request to a
// googleapis.com API without (or with an unusable) credential (Google's
// "Authentication overview"; the message text is what Google's front end
// sends, quoted in its API error references).
const (
	msgCredentialsMissing = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	msgCredentialsInvalid = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

// authenticate is the 401 UNAUTHENTICATED of a request to Procurement or
// Service Control without a bearer token, or nil. Its ErrorInfo (errinfo.go)
// has reason CREDENTIALS_MISSING, or ACCESS_TOKEN_TYPE_UNSUPPORTED for an
// Authorization header that is not a non-empty bearer token.
func authenticate(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &apiError{http.StatusUnauthorized, "UNAUTHENTICATED", msgCredentialsMissing}
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return &apiError{http.StatusUnauthorized, "UNAUTHENTICATED", msgCredentialsInvalid}
	}
	return nil
}
