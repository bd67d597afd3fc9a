package signup

import (
	"cmp"
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

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// Sign-up sessions: Google's sign-up token lives about five minutes, and a
// customer filling in a form takes longer. Sessions verifies the token
// once, when Google's redirect brings it, and carries the verified claims
// to the form in a short-lived cookie signed by the vendor's key.

// Limits and defaults of Sessions.
const (
	// DefaultLifetime is how long a sign-up session lasts unless
	// Config.Lifetime says otherwise.
	DefaultLifetime = time.Hour
	// MaxLifetime caps Config.Lifetime: the session stands in for a token
	// Google made valid for minutes.
	MaxLifetime = 24 * time.Hour
	// MinKeySize is the shortest HMAC key NewSessions accepts, in bytes:
	// SHA-256's block of security.
	MinKeySize = 32
	// DefaultCookie is the default name of the session cookie.
	DefaultCookie = "gcpmarketplace_signup"
	// AccountField is the form field that a sign-up form posted to
	// Sessions.Handler must carry: the account id the page was rendered
	// for (Session.AccountID).
	AccountField = "marketplace-account-id"
)

// maxSessionCookie bounds a session cookie's value, checked before it is
// decoded; browsers keep at most about 4 KiB per cookie anyway.
const maxSessionCookie = 4000

// sessionMACContext separates the session's MAC from anything else a
// vendor might sign with the same key.
const sessionMACContext = "gcpmarketplace sign-up session v1\x00"

// Session is what a sign-up page needs from a verified sign-up token,
// carried from Google's redirect to the form's submission.
type Session struct {
	// AccountID is the token's sub: the Procurement account to pass to
	// marketplace.Processor.CompleteSignup.
	AccountID string
	// UserIdentity is the token's google.user_identity.
	UserIdentity string
	// Audience is the configured audience the token was issued for.
	Audience string
	// Orders is the token's order ids, if any (verify.SignupClaims.Orders).
	Orders []string
	// IssuedAt and ExpiresAt bound the session (not the token).
	IssuedAt, ExpiresAt time.Time

	tokenRef string // identifies the token that started the session
}

// SessionReason is why a sign-up session was refused. Each reason is an
// error, so errors.Is(err, ErrSessionExpired) works on any error Sessions
// returns.
type SessionReason string

// Error returns the reason's text.
func (r SessionReason) Error() string { return string(r) }

// Reasons a sign-up session is refused.
const (
	// ErrSessionMissing: the request carries no session cookie (another
	// browser, cookies blocked, or the page opened directly).
	ErrSessionMissing SessionReason = "sign-up session missing"
	// ErrSessionMalformed: the cookie is not a session this package wrote.
	ErrSessionMalformed SessionReason = "sign-up session malformed"
	// ErrSessionSignature: the MAC does not verify with any configured key:
	// the cookie was altered, or signed by a key not (or no longer)
	// configured.
	ErrSessionSignature SessionReason = "sign-up session signature invalid"
	// ErrSessionExpired: the session's lifetime is over.
	ErrSessionExpired SessionReason = "sign-up session expired"
	// ErrSessionAudience: the session was issued for an audience this
	// verifier does not accept (another product or deployment sharing the
	// key).
	ErrSessionAudience SessionReason = "sign-up session for another audience"
	// ErrSessionAccount: the session is for another account than the form
	// names (the browser started a newer sign-up since the page was shown),
	// or the form names none.
	ErrSessionAccount SessionReason = "sign-up session for another account"
)

// SessionError is the error returned for a refused sign-up session. Match
// the reason with errors.Is, or get the struct with errors.As.
type SessionError struct {
	Reason SessionReason
	Err    error // detail, possibly nil
}

// Error describes the refusal: the reason and the detail.
func (e *SessionError) Error() string {
	msg := "signup: " + string(e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the reason and the detail, so errors.Is matches both.
func (e *SessionError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

func sessionErr(reason SessionReason, format string, args ...any) error {
	var detail error
	if format != "" {
		detail = fmt.Errorf(format, args...)
	}
	return &SessionError{Reason: reason, Err: detail}
}

// Sessions runs a sign-up page's flow:
//
//  1. Begin serves the sign-up URL. Google's redirect POSTs the token; Begin
//     verifies it (verify.SignupVerifier), records it as used in the Store
//     (UsedTokens: a copy of the token cannot start another sign-up), sets
//     the session cookie and redirects (303) to the form's URL.
//  2. Handler serves the form's URL: it reads the session, not the token,
//     and calls the page's function with it, however long after the token
//     expired, within the session's lifetime (1 hour by default). On the
//     form's POST, the form's AccountField must name the session's
//     account. The page calls marketplace.Processor.CompleteSignup.
//
// The cookie is HttpOnly, SameSite=Lax, Secure when the request came over
// TLS (directly or, per X-Forwarded-Proto, through a proxy) or when
// Config.Secure is set, and expires with the session. It holds the account
// id, the user identity, the audience, the order ids and the expiry, in
// clear but signed: HMAC-SHA256 with the first of the vendor's keys; any
// configured key verifies, so keys can be rotated by adding the new one
// first and dropping the old one a lifetime later.
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
// Config's logger with the reason and account id, never the token or the
// cookie. A Sessions is safe for concurrent use.
type Sessions struct {
	v         *verify.SignupVerifier
	audiences []string // v's, for the sessions' aud
	used      UsedTokens
	keys      [][]byte // keys[0] signs
	lifetime  time.Duration
	now       func() time.Time
	cookie    string
	path      string
	secure    bool
	logger    *slog.Logger
	page      func(w http.ResponseWriter, r *http.Request, status int, err error)

	lastPrune atomic.Int64 // unix seconds of the last PruneUsedTokens
}

// NewSessions returns the sign-up flow for tokens v verifies, with used
// tokens recorded in used (the Store: memstore, sqlitestore and pgstore
// implement UsedTokens) and sessions signed with keys[0] and verified with
// any of keys. Each key must have at least MinKeySize random bytes and be
// the same on every replica (ParseKeys reads them from configuration). cfg
// may be nil.
func NewSessions(v *verify.SignupVerifier, used UsedTokens, keys [][]byte, cfg *Config) (*Sessions, error) {
	if v == nil || used == nil {
		return nil, errors.New("signup: NewSessions: nil verifier or UsedTokens")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	s := &Sessions{v: v, audiences: v.Audiences(), used: used,
		lifetime: cmp.Or(c.Lifetime, DefaultLifetime), now: c.NowFunc(),
		cookie: cmp.Or(c.CookieName, DefaultCookie), path: cmp.Or(c.CookiePath, "/"), secure: c.Secure,
		logger: c.Log(), page: c.ErrorPage}
	if s.page == nil {
		s.page = defaultErrorPage
	}
	if len(keys) == 0 {
		return nil, errors.New("signup: NewSessions: no key; pass at least one of 32 random bytes or more")
	}
	for i, k := range keys {
		if len(k) < MinKeySize {
			return nil, fmt.Errorf("signup: NewSessions: key %d has %d bytes, want at least %d", i, len(k), MinKeySize)
		}
		s.keys = append(s.keys, slices.Clone(k))
	}
	if s.lifetime < time.Minute || s.lifetime > MaxLifetime {
		return nil, fmt.Errorf("signup: NewSessions: lifetime %v outside 1m..%v", s.lifetime, MaxLifetime)
	}
	// An invalid name or path would make http.SetCookie drop the cookie
	// silently, and every sign-up would end at "session missing".
	if err := (&http.Cookie{Name: s.cookie, Value: "x", Path: s.path}).Valid(); err != nil || !strings.HasPrefix(s.path, "/") {
		return nil, fmt.Errorf("signup: NewSessions: cookie name %q and path %q: want a token and an absolute path", s.cookie, s.path)
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
func (s *Sessions) seal(c verify.SignupClaims, tokenKey string) (string, error) {
	now := s.now()
	sess := Session{AccountID: c.AccountID, UserIdentity: c.UserIdentity, Audience: c.Audience,
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
// *SessionError.
func (s *Sessions) unseal(value string) (Session, error) {
	if len(value) > maxSessionCookie {
		return Session{}, sessionErr(ErrSessionMalformed, "%d bytes", len(value))
	}
	payload, macText, ok := strings.Cut(value, ".")
	if !ok || strings.Contains(macText, ".") {
		return Session{}, sessionErr(ErrSessionMalformed, "want payload.mac")
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(macText)
	if err != nil || len(mac) != sha256.Size {
		return Session{}, sessionErr(ErrSessionMalformed, "mac is not %d bytes of base64url", sha256.Size)
	}
	if !slices.ContainsFunc(s.keys, func(k []byte) bool { return hmac.Equal(mac, sessionMAC(k, payload)) }) {
		return Session{}, sessionErr(ErrSessionSignature, "")
	}
	// Signed by us: what follows only guards against our own mistakes and
	// older versions.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return Session{}, sessionErr(ErrSessionMalformed, "payload: %v", err)
	}
	var p sessionPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.V != 1 || p.Acc == "" || p.Exp <= p.Iat {
		return Session{}, sessionErr(ErrSessionMalformed, "payload of version %d", p.V)
	}
	if !slices.Contains(s.audiences, p.Aud) {
		return Session{}, sessionErr(ErrSessionAudience, "audience %q", p.Aud)
	}
	sess := Session{AccountID: p.Acc, UserIdentity: p.UID, Audience: p.Aud, Orders: p.Ord,
		IssuedAt: time.Unix(p.Iat, 0).UTC(), ExpiresAt: time.Unix(p.Exp, 0).UTC(), tokenRef: p.Tok}
	// A lifetime shortened since the session was issued applies to it too.
	if end := sess.IssuedAt.Add(s.lifetime); end.Before(sess.ExpiresAt) {
		sess.ExpiresAt = end
	}
	if now := s.now(); !now.Before(sess.ExpiresAt) {
		return Session{}, sessionErr(ErrSessionExpired, "at %v, now %v", sess.ExpiresAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return sess, nil
}

// Open returns the session r carries. If accountID is not empty, the
// session must be for that account (ErrSessionAccount otherwise). Every
// error is a *SessionError.
func (s *Sessions) Open(r *http.Request, accountID string) (Session, error) {
	cs := r.CookiesNamed(s.cookie)
	switch {
	case len(cs) == 0:
		return Session{}, sessionErr(ErrSessionMissing, "")
	case len(cs) > 1:
		// Browsers send the cookie with the longest path first, so one
		// planted from a sibling subdomain or over plain HTTP would shadow
		// the genuine one: refuse rather than guess.
		return Session{}, sessionErr(ErrSessionMalformed, "%d cookies named %s", len(cs), s.cookie)
	}
	c := cs[0]
	sess, err := s.unseal(c.Value)
	if err != nil {
		return Session{}, err
	}
	if accountID != "" && accountID != sess.AccountID {
		return Session{}, sessionErr(ErrSessionAccount, "")
	}
	return sess, nil
}

// setCookie sets the session cookie for value.
func (s *Sessions) setCookie(w http.ResponseWriter, r *http.Request, value string) {
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
