package signup

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// usedTokenPruneEvery spaces the PruneUsedTokens calls Begin makes: records only
// need to go eventually, and sign-ups are rare.
const usedTokenPruneEvery = 10 * time.Minute

// Begin serves the sign-up URL configured in Producer Portal, where
// Google's redirect POSTs the token (form field or header
// verify.SignupTokenField). It verifies the token, records it as used, sets the
// session cookie and redirects (303 See Other) to formURL, which
// Handler serves. The token is used here, on arrival, rather than when
// the form is submitted: it is then no longer needed, so a copy of it
// (from a proxy's log, a shared screen, the browser's history of the
// POST) is worth nothing from the first second, and the customer's own
// browser holds the only credential, the session. The same browser
// presenting the same token again while its session lasts (a reload, a
// double click) is sent to the form again.
//
// A refused token gets the error page with 400 (malformed, missing, too
// large), 403 (used already, expired, forged...), 413 (body over 64 KiB)
// or 503 (Google's keys or the Store unavailable: retry); 405 for methods
// other than POST. Begin panics if formURL is empty.
func (s *Sessions) Begin(formURL string) http.Handler {
	if formURL == "" {
		panic("signup: Sessions.Begin: empty form URL")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			s.fail(w, r, http.StatusMethodNotAllowed, &verify.TokenError{Reason: verify.ErrTokenMissing, Kind: "sign-up"}, "")
			return
		}
		claims, key, status, err := s.verify(w, r)
		if err != nil {
			s.fail(w, r, status, err, claims.AccountID)
			return
		}
		// Seal first: a session that cannot be made (a token with very many
		// orders) must not use the token up, or every retry would be refused.
		value, err := s.seal(claims, key)
		if err != nil {
			s.fail(w, r, http.StatusInternalServerError, err, claims.AccountID)
			return
		}
		// Kept past the token's expiry by the largest clock skew a verifier
		// allows and a whole token lifetime, so that replicas whose clocks
		// differ (prune runs on each one's clock) cannot forget a token
		// another one still accepts.
		first, err := s.used.UseToken(r.Context(), key, claims.ExpiresAt.Add(verify.MaxLeeway+verify.MaxTokenLifetime))
		if err != nil {
			s.logger.LogAttrs(r.Context(), slog.LevelError, "signup: recording the token as used",
				slog.String("account_id", claims.AccountID), slog.String("error", err.Error()))
			s.fail(w, r, http.StatusServiceUnavailable, err, claims.AccountID)
			return
		}
		if !first {
			if sess, err := s.Open(r, claims.AccountID); err == nil && sess.tokenRef == tokenRef(key) {
				http.Redirect(w, r, formURL, http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusForbidden, &verify.TokenError{Reason: ErrTokenReplayed, Kind: "sign-up"}, claims.AccountID)
			return
		}
		s.prune(r.Context())
		s.setCookie(w, r, value)
		http.Redirect(w, r, formURL, http.StatusSeeOther)
	})
}

// verify reads and verifies the request's token, returning its claims,
// its UsedTokens key, and on failure the status to answer.
func (s *Sessions) verify(w http.ResponseWriter, r *http.Request) (verify.SignupClaims, string, int, error) {
	token, err := signupTokenFromRequest(w, r)
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return verify.SignupClaims{}, "", http.StatusRequestEntityTooLarge, &verify.TokenError{Reason: verify.ErrTokenTooLarge, Err: err, Kind: "sign-up"}
		}
		return verify.SignupClaims{}, "", http.StatusBadRequest, &verify.TokenError{Reason: verify.ErrTokenMalformed, Err: err, Kind: "sign-up"}
	}
	claims, err := s.v.Verify(r.Context(), token)
	if err != nil {
		switch {
		case errors.Is(err, verify.ErrKeysUnavailable):
			return verify.SignupClaims{}, "", http.StatusServiceUnavailable, err
		case errors.Is(err, verify.ErrTokenMissing), errors.Is(err, verify.ErrTokenMalformed), errors.Is(err, verify.ErrTokenTooLarge):
			return verify.SignupClaims{}, "", http.StatusBadRequest, err
		}
		return verify.SignupClaims{}, "", http.StatusForbidden, err
	}
	key, err := signupTokenKey(token, claims)
	if err != nil {
		return claims, "", http.StatusBadRequest, &verify.TokenError{Reason: verify.ErrTokenMalformed, Err: err, Kind: "sign-up"}
	}
	return claims, key, 0, nil
}

// prune deletes expired used-token records, at most once every usedTokenPruneEvery
// (per process), in the request's goroutine: no background work to stop.
func (s *Sessions) prune(ctx context.Context) {
	now := s.now()
	last := s.lastPrune.Load()
	if now.Unix()-last < int64(usedTokenPruneEvery/time.Second) || !s.lastPrune.CompareAndSwap(last, now.Unix()) {
		return
	}
	if _, err := s.used.PruneUsedTokens(ctx, now); err != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "signup: pruning used tokens", slog.String("error", err.Error()))
	}
}

// Handler serves the sign-up form's URL (the formURL of Begin), for GET and
// POST: it calls next with the request's session. On a POST (the form's
// submission), the form field AccountField must name the session's
// account: a browser that started a newer sign-up in another tab since the
// form was shown holds that newer session, and the older form must not
// complete it with what was typed for the other account. A missing,
// expired, altered, foreign or mismatched session gets the error page with
// 403. Handler panics if next is nil.
func (s *Sessions) Handler(next func(w http.ResponseWriter, r *http.Request, sess Session)) http.Handler {
	if next == nil {
		panic("signup: Sessions.Handler: nil next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		account := ""
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxSignupBody)
			if account = r.PostFormValue(AccountField); account == "" {
				s.fail(w, r, http.StatusForbidden, sessionErr(ErrSessionAccount, "the form has no %s field", AccountField), "")
				return
			}
		}
		sess, err := s.Open(r, account)
		if err != nil {
			s.fail(w, r, http.StatusForbidden, err, account)
			return
		}
		next(w, r, sess)
	})
}

// fail logs a refusal and shows the error page.
func (s *Sessions) fail(w http.ResponseWriter, r *http.Request, status int, err error, accountID string) {
	level := slog.LevelWarn
	if status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	attrs := []slog.Attr{slog.Int("status", status), slog.String("error", err.Error()), slog.String("remote_addr", r.RemoteAddr)}
	if accountID != "" {
		attrs = append(attrs, slog.String("account_id", accountID))
	}
	s.logger.LogAttrs(r.Context(), level, "signup: sign-up refused", attrs...)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	s.page(w, r, status, err)
}

// The Google Cloud console page listing the customer's Marketplace orders,
// where the sign-up with the vendor can be started again.
const consoleOrdersURL = "https://console.cloud.google.com/marketplace/orders"

var signupErrorTemplate = template.Must(template.New("").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title><style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}</style>
</head><body><h1 id="signup-error" data-reason="{{.Reason}}">{{.Title}}</h1><p>{{.Text}}</p>
{{if .Restart}}<p>To finish signing up, go back to the Google Cloud console, open
<a href="{{.Console}}">Marketplace &gt; Your orders</a>, select this product and choose to sign up with the provider
again. Your purchase is not affected.</p>{{end}}</body></html>
`))

// defaultErrorPage tells the customer what happened, in words, and
// how to start again.
func defaultErrorPage(w http.ResponseWriter, _ *http.Request, status int, err error) {
	title, text, restart := "We could not continue your sign-up",
		"This sign-up link or session could not be verified.", true
	reason := "refused"
	switch {
	case errors.Is(err, ErrSessionExpired):
		title, text, reason = "Your sign-up session has expired",
			"For your security, a sign-up must be finished within a limited time.", "expired"
	case errors.Is(err, ErrSessionMissing):
		title, text, reason = "We could not find your sign-up session",
			"The sign-up was started in another browser, or this browser does not keep cookies for this site.", "missing"
	case errors.Is(err, ErrSessionAccount):
		title, text, reason = "This page belongs to another sign-up",
			"A newer sign-up was started in this browser since this page was opened.", "account"
	case errors.Is(err, ErrTokenReplayed):
		title, text, reason = "This sign-up link has already been used",
			"Each sign-up link from Google Cloud Marketplace can be used once.", "used"
	case errors.Is(err, verify.ErrTokenExpired):
		title, text, reason = "This sign-up link has expired",
			"Sign-up links from Google Cloud Marketplace are valid for a few minutes.", "expired"
	case status == http.StatusServiceUnavailable:
		title, text, restart, reason = "Sign-up is temporarily unavailable",
			"Please reload this page in a minute.", false, "unavailable"
	case status >= http.StatusInternalServerError:
		title, text, restart, reason = "Something went wrong", "We could not start your sign-up.", true, "error"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = signupErrorTemplate.Execute(w, map[string]any{"Title": title, "Text": text, "Restart": restart,
		"Reason": reason, "Console": consoleOrdersURL})
}

// ParseKeys reads NewSessions keys from configuration: comma-separated
// base64 (standard or URL alphabet, padded or not), each of at least
// MinKeySize bytes, the signing key first. Generate
// one with `openssl rand -base64 32`.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimRight(strings.TrimSpace(f), "=")
		if f == "" {
			continue
		}
		k, err := base64.RawStdEncoding.DecodeString(f)
		if err != nil {
			k, err = base64.RawURLEncoding.DecodeString(f)
		}
		if err != nil {
			return nil, fmt.Errorf("signup: sign-up session key %d is not base64", i)
		}
		if len(k) < MinKeySize {
			return nil, fmt.Errorf("signup: sign-up session key %d has %d bytes, want at least %d", i, len(k), MinKeySize)
		}
		if bytes.Count(k, k[:1]) == len(k) {
			return nil, fmt.Errorf("signup: sign-up session key %d is one byte repeated: generate it with openssl rand -base64 32", i)
		}
		for j, prev := range keys {
			if bytes.Equal(prev, k) {
				return nil, fmt.Errorf("signup: sign-up session keys %d and %d are the same", j, i)
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("signup: no sign-up session key")
	}
	return keys, nil
}
