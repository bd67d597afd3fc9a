package signup

import (
	"net/http"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
)

// Config configures Sessions and Handler. The zero Config (or a nil
// *Config) gives the defaults. Handler reads only Runtime.
type Config struct {
	// Runtime gives the logger refusals are logged on (at Warn, with the
	// reason and account id, never the token or the cookie) and the clock
	// of the sessions' expiry. Pass the verifier's Runtime: tests give both
	// the emulator's clock.
	gcpmarketplace.Runtime

	// Lifetime is how long a session lasts, from Begin: at least a minute,
	// at most MaxLifetime. 0 means DefaultLifetime. Sessions issued under a
	// longer lifetime end when the configured one does.
	Lifetime time.Duration

	// CookieName is the session cookie's name; "" means DefaultCookie.
	CookieName string
	// CookiePath is the cookie's path; "" means "/". It must cover the
	// form's URL.
	CookiePath string
	// Secure marks the cookie Secure on every response, for deployments
	// behind a TLS-terminating proxy that sets no X-Forwarded-Proto. (It is
	// Secure anyway on requests that came over TLS, directly or per
	// X-Forwarded-Proto.)
	Secure bool

	// ErrorPage replaces the page shown when a token or session is
	// refused. It gets the HTTP status to answer and the error: match it
	// with errors.Is against the verify.Err* and ErrSession* reasons and
	// ErrTokenReplayed. nil means a page telling the customer to restart
	// from the Google Cloud console (Marketplace > Your orders).
	ErrorPage func(w http.ResponseWriter, r *http.Request, status int, err error)
}
