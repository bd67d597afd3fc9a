package marketplace

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Sign-up sessions: Google's sign-up token lives about five minutes, and a
// customer filling in a form takes longer. SignupSessions verifies the
// token once, when Google's redirect brings it, and carries the verified
// claims to the form in a short-lived cookie signed by the vendor's key.

// Limits and defaults of SignupSessions.
const (
	// DefaultSignupSessionLifetime is how long a sign-up session lasts
	// unless WithSignupSessionLifetime says otherwise.
	DefaultSignupSessionLifetime = time.Hour
	// MaxSignupSessionLifetime caps WithSignupSessionLifetime: the session
	// stands in for a token Google made valid for minutes.
	MaxSignupSessionLifetime = 24 * time.Hour
	// MinSignupSessionKeySize is the shortest HMAC key NewSignupSessions
	// accepts, in bytes: SHA-256's block of security.
	MinSignupSessionKeySize = 32
	// SignupSessionCookie is the default name of the session cookie.
	SignupSessionCookie = "gcpmarketplace_signup"
	// SignupAccountField is the form field that a sign-up form posted to
	// SignupSessions.Handler must carry: the account id the page was
	// rendered for (SignupSession.AccountID).
	SignupAccountField = "marketplace-account-id"
)

// maxSessionCookie bounds a session cookie's value, checked before it is
// decoded; browsers keep at most about 4 KiB per cookie anyway.
const maxSessionCookie = 4000

// sessionMACContext separates the session's MAC from anything else a
// vendor might sign with the same key.
const sessionMACContext = "gcpmarketplace sign-up session v1\x00"

// SignupSession is what a sign-up page needs from a verified sign-up token,
// carried from Google's redirect to the form's submission.
type SignupSession struct {
	// AccountID is the token's sub: the Procurement account to pass to
	// Processor.CompleteSignup.
	AccountID string
	// UserIdentity is the token's google.user_identity.
	UserIdentity string
	// Audience is the configured audience the token was issued for.
	Audience string
	// Orders is the token's order ids, if any (SignupClaims.Orders).
	Orders []string
	// IssuedAt and ExpiresAt bound the session (not the token).
	IssuedAt, ExpiresAt time.Time

	tokenRef string // identifies the token that started the session
}

// SignupSessionReason is why a sign-up session was refused. Each reason is
// an error, so errors.Is(err, ErrSessionExpired) works on any error
// SignupSessions returns.
type SignupSessionReason string

// Error returns the reason's text.
func (r SignupSessionReason) Error() string { return string(r) }

// Reasons a sign-up session is refused.
const (
	// ErrSessionMissing: the request carries no session cookie (another
	// browser, cookies blocked, or the page opened directly).
	ErrSessionMissing SignupSessionReason = "sign-up session missing"
	// ErrSessionMalformed: the cookie is not a session this package wrote.
	ErrSessionMalformed SignupSessionReason = "sign-up session malformed"
	// ErrSessionSignature: the MAC does not verify with any configured key:
	// the cookie was altered, or signed by a key not (or no longer)
	// configured.
	ErrSessionSignature SignupSessionReason = "sign-up session signature invalid"
	// ErrSessionExpired: the session's lifetime is over.
	ErrSessionExpired SignupSessionReason = "sign-up session expired"
	// ErrSessionAudience: the session was issued for an audience this
	// verifier does not accept (another product or deployment sharing the
	// key).
	ErrSessionAudience SignupSessionReason = "sign-up session for another audience"
	// ErrSessionAccount: the session is for another account than the form
	// names (the browser started a newer sign-up since the page was shown),
	// or the form names none.
	ErrSessionAccount SignupSessionReason = "sign-up session for another account"
)

// SignupSessionError is the error returned for a refused sign-up session.
// Match the reason with errors.Is, or get the struct with errors.As.
type SignupSessionError struct {
	Reason SignupSessionReason
	Err    error // detail, possibly nil
}

func (e *SignupSessionError) Error() string {
	msg := "marketplace: " + string(e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the reason and the detail, so errors.Is matches both.
func (e *SignupSessionError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

func sessionErr(reason SignupSessionReason, format string, args ...any) error {
	var detail error
	if format != "" {
		detail = fmt.Errorf(format, args...)
	}
	return &SignupSessionError{Reason: reason, Err: detail}
}

// SignupSessions runs a sign-up page's flow:
//
//  1. Begin serves the sign-up URL. Google's redirect POSTs the token; Begin
//     verifies it (SignupVerifier), records it as used in the Store
//     (UsedTokens: a copy of the token cannot start another sign-up), sets
//     the session cookie and redirects (303) to the form's URL.
//  2. Handler serves the form's URL: it reads the session, not the token,
//     and calls the page's function with it, however long after the token
//     expired, within the session's lifetime (1 hour by default). On the
//     form's POST, the form's SignupAccountField must name the session's
//     account. The page calls Processor.CompleteSignup.
//
// The cookie is HttpOnly, SameSite=Lax, Secure when the request came over
// TLS (directly or, per X-Forwarded-Proto, through a proxy) or when
// WithSignupSessionSecure is given, and expires with the session. It holds
// the account id, the user identity, the audience, the order ids and the
// expiry, in clear but signed: HMAC-SHA256 with the first of the vendor's
// keys; any configured key verifies, so keys can be rotated by adding the
// new one first and dropping the old one a lifetime later.
//
// Lax, not Strict: Google's redirect is a cross-site POST, and the redirect
// to the form that follows it is part of that cross-site navigation, so a
// Strict cookie set by Begin would not be sent to the form. Lax sends it
// there (a top-level GET) and on the form's own POST (same site), and keeps
// it off POSTs from other sites, so another site cannot submit the form in
// the customer's name.
//
// A refusal (token or session) gets an HTML page telling the customer how
// to restart the sign-up from the Google Cloud console, logged at Warn on
// the verifier's logger with the reason and account id, never the token or
// the cookie. A SignupSessions is safe for concurrent use.
type SignupSessions struct {
	v        *SignupVerifier
	used     UsedTokens
	keys     [][]byte // keys[0] signs
	lifetime time.Duration
	now      func() time.Time
	cookie   string
	path     string
	secure   bool
	logger   *slog.Logger
	page     func(w http.ResponseWriter, r *http.Request, status int, err error)

	lastPrune atomic.Int64 // unix seconds of the last PruneUsedTokens
}

// SignupSessionOption configures SignupSessions.
type SignupSessionOption func(*SignupSessions)

// WithSignupSessionLifetime sets how long a session lasts, from Begin: at
// least a minute, at most MaxSignupSessionLifetime. Sessions issued under a
// longer lifetime end when the configured one does.
func WithSignupSessionLifetime(d time.Duration) SignupSessionOption {
	return func(s *SignupSessions) { s.lifetime = d }
}

// WithSignupSessionClock sets the source of the current time for the
// session's expiry. The default is the verifier's clock (WithSignupClock).
func WithSignupSessionClock(now func() time.Time) SignupSessionOption {
	return func(s *SignupSessions) { s.now = now }
}

// WithSignupSessionCookie sets the cookie's name (default
// SignupSessionCookie) and path (default "/"; it must cover the form's URL).
func WithSignupSessionCookie(name, path string) SignupSessionOption {
	return func(s *SignupSessions) { s.cookie, s.path = name, path }
}

// WithSignupSessionSecure marks the cookie Secure on every response, for
// deployments behind a TLS-terminating proxy that sets no
// X-Forwarded-Proto.
func WithSignupSessionSecure() SignupSessionOption {
	return func(s *SignupSessions) { s.secure = true }
}

// WithSignupErrorPage replaces the page shown when a token or session is
// refused. page gets the HTTP status to answer and the error: match it with
// errors.Is against the ErrToken* and ErrSession* reasons. The default
// page tells the customer to restart from the Google Cloud console
// (Marketplace > Your orders).
func WithSignupErrorPage(page func(w http.ResponseWriter, r *http.Request, status int, err error)) SignupSessionOption {
	return func(s *SignupSessions) { s.page = page }
}

// NewSignupSessions returns the sign-up flow for tokens v verifies, with
// used tokens recorded in used (the Store: memstore, sqlitestore and
// pgstore implement UsedTokens) and sessions signed with keys[0] and
// verified with any of keys. Each key must have at least
// MinSignupSessionKeySize random bytes and be the same on every replica.
func NewSignupSessions(v *SignupVerifier, used UsedTokens, keys [][]byte, opts ...SignupSessionOption) (*SignupSessions, error) {
	if v == nil || used == nil {
		return nil, errors.New("marketplace: NewSignupSessions: nil verifier or UsedTokens")
	}
	s := &SignupSessions{v: v, used: used, lifetime: DefaultSignupSessionLifetime, now: v.check.now,
		cookie: SignupSessionCookie, path: "/", logger: v.logger, page: defaultSignupErrorPage}
	for _, o := range opts {
		o(s)
	}
	if len(keys) == 0 {
		return nil, errors.New("marketplace: NewSignupSessions: no key; pass at least one of 32 random bytes or more")
	}
	for i, k := range keys {
		if len(k) < MinSignupSessionKeySize {
			return nil, fmt.Errorf("marketplace: NewSignupSessions: key %d has %d bytes, want at least %d", i, len(k), MinSignupSessionKeySize)
		}
		s.keys = append(s.keys, slices.Clone(k))
	}
	if s.lifetime < time.Minute || s.lifetime > MaxSignupSessionLifetime {
		return nil, fmt.Errorf("marketplace: NewSignupSessions: lifetime %v outside 1m..%v", s.lifetime, MaxSignupSessionLifetime)
	}
	if s.now == nil || s.page == nil || s.logger == nil {
		return nil, errors.New("marketplace: NewSignupSessions: nil clock, error page or logger")
	}
	// An invalid name or path would make http.SetCookie drop the cookie
	// silently, and every sign-up would end at "session missing".
	if err := (&http.Cookie{Name: s.cookie, Value: "x", Path: s.path}).Valid(); err != nil || !strings.HasPrefix(s.path, "/") {
		return nil, fmt.Errorf("marketplace: NewSignupSessions: cookie name %q and path %q: want a token and an absolute path", s.cookie, s.path)
	}
	return s, nil
}

// sessionPayload is the cookie's signed content. Short names: the cookie
// travels with every request to its path.
type sessionPayload struct {
	V   int      `json:"v"`
	Acc string   `json:"acc"`
	UID string   `json:"uid,omitempty"`
	Aud string   `json:"aud"`
	Ord []string `json:"ord,omitempty"`
	Iat int64    `json:"iat"`
	Exp int64    `json:"exp"`
	Tok string   `json:"tok"`
}

// seal returns the cookie value of a new session for c, started by the
// token whose UsedTokens key is tokenKey.
func (s *SignupSessions) seal(c SignupClaims, tokenKey string) (string, error) {
	now := s.now()
	sess := SignupSession{AccountID: c.AccountID, UserIdentity: c.UserIdentity, Audience: c.Audience,
		Orders: c.Orders, IssuedAt: now.Truncate(time.Second), tokenRef: tokenRef(tokenKey)}
	sess.ExpiresAt = sess.IssuedAt.Add(s.lifetime)
	raw, err := json.Marshal(sessionPayload{V: 1, Acc: sess.AccountID, UID: sess.UserIdentity, Aud: sess.Audience,
		Ord: sess.Orders, Iat: sess.IssuedAt.Unix(), Exp: sess.ExpiresAt.Unix(), Tok: sess.tokenRef})
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(raw)
	value := payload + "." + base64.RawURLEncoding.EncodeToString(sessionMAC(s.keys[0], payload))
	if len(value) > maxSessionCookie {
		return "", fmt.Errorf("session cookie of %d bytes exceeds %d (%d orders)", len(value), maxSessionCookie, len(c.Orders))
	}
	return value, nil
}

// tokenRef is the part of a token's UsedTokens key a session keeps, to
// recognise the browser that started it presenting the token again.
func tokenRef(key string) string { return key[:min(len(key), 32)] }

func sessionMAC(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionMACContext))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// unseal verifies and decodes a cookie value. Every error is a
// *SignupSessionError.
func (s *SignupSessions) unseal(value string) (SignupSession, error) {
	if len(value) > maxSessionCookie {
		return SignupSession{}, sessionErr(ErrSessionMalformed, "%d bytes", len(value))
	}
	payload, macText, ok := strings.Cut(value, ".")
	if !ok || strings.Contains(macText, ".") {
		return SignupSession{}, sessionErr(ErrSessionMalformed, "want payload.mac")
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(macText)
	if err != nil || len(mac) != sha256.Size {
		return SignupSession{}, sessionErr(ErrSessionMalformed, "mac is not %d bytes of base64url", sha256.Size)
	}
	if !slices.ContainsFunc(s.keys, func(k []byte) bool { return hmac.Equal(mac, sessionMAC(k, payload)) }) {
		return SignupSession{}, sessionErr(ErrSessionSignature, "")
	}
	// Signed by us: what follows only guards against our own mistakes and
	// older versions.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return SignupSession{}, sessionErr(ErrSessionMalformed, "payload: %v", err)
	}
	var p sessionPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.V != 1 || p.Acc == "" || p.Exp <= p.Iat {
		return SignupSession{}, sessionErr(ErrSessionMalformed, "payload of version %d", p.V)
	}
	if !slices.Contains(s.v.check.audiences, p.Aud) {
		return SignupSession{}, sessionErr(ErrSessionAudience, "audience %q", p.Aud)
	}
	sess := SignupSession{AccountID: p.Acc, UserIdentity: p.UID, Audience: p.Aud, Orders: p.Ord,
		IssuedAt: time.Unix(p.Iat, 0).UTC(), ExpiresAt: time.Unix(p.Exp, 0).UTC(), tokenRef: p.Tok}
	// A lifetime shortened since the session was issued applies to it too.
	if end := sess.IssuedAt.Add(s.lifetime); end.Before(sess.ExpiresAt) {
		sess.ExpiresAt = end
	}
	if now := s.now(); !now.Before(sess.ExpiresAt) {
		return SignupSession{}, sessionErr(ErrSessionExpired, "at %v, now %v", sess.ExpiresAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return sess, nil
}

// Open returns the session r carries. If accountID is not empty, the
// session must be for that account (ErrSessionAccount otherwise). Every
// error is a *SignupSessionError.
func (s *SignupSessions) Open(r *http.Request, accountID string) (SignupSession, error) {
	cs := r.CookiesNamed(s.cookie)
	switch {
	case len(cs) == 0:
		return SignupSession{}, sessionErr(ErrSessionMissing, "")
	case len(cs) > 1:
		// Browsers send the cookie with the longest path first, so one
		// planted from a sibling subdomain or over plain HTTP would shadow
		// the genuine one: refuse rather than guess.
		return SignupSession{}, sessionErr(ErrSessionMalformed, "%d cookies named %s", len(cs), s.cookie)
	}
	c := cs[0]
	sess, err := s.unseal(c.Value)
	if err != nil {
		return SignupSession{}, err
	}
	if accountID != "" && accountID != sess.AccountID {
		return SignupSession{}, sessionErr(ErrSessionAccount, "")
	}
	return sess, nil
}

// setCookie sets the session cookie for value.
func (s *SignupSessions) setCookie(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookie, Value: value, Path: s.path, MaxAge: int(s.lifetime / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: s.secure || r.TLS != nil || forwardedHTTPS(r.Header),
	})
}

// forwardedHTTPS reports whether the proxy in front says the client came
// over HTTPS: the first entry of X-Forwarded-Proto or Forwarded's proto.
// Trusting it can only add Secure to the cookie.
func forwardedHTTPS(h http.Header) bool {
	first, _, _ := strings.Cut(h.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(first), "https") {
		return true
	}
	first, _, _ = strings.Cut(h.Get("Forwarded"), ",")
	for _, kv := range strings.Split(first, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}
