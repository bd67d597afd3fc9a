package signup

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// maxSignupBody bounds the sign-up POST body: the form holds one ~1 KiB token.
const maxSignupBody = 64 << 10

// Handler serves the partner's sign-up URL without sessions, for a page
// that completes the sign-up in the same request (Sessions is the flow for
// a form the customer fills in). Google sends the buyer's browser there
// with a POST whose form field verify.SignupTokenField holds the sign-up
// JWT; the handler also accepts the token in a header of that name (some
// proxies forward it so), but never in the URL query, where it would end
// up in access logs.
//
// It verifies the token with v and calls next with the claims, which next
// uses to show the sign-up form or link the account (AccountID) to the
// signed-in user (UserIdentity), then approve it. Otherwise it answers,
// with a short plain-text body:
//
//   - 405 for methods other than POST (Google always POSTs);
//   - 413 if the body exceeds 64 KiB;
//   - 400 if the token is missing, malformed or too large;
//   - 503 if Google's keys cannot be fetched (verify.ErrKeysUnavailable;
//     the browser can retry);
//   - 401 for every other refusal (signature, issuer, audience, expiry...).
//
// Refusals are logged at Warn on cfg's logger (nil: slog.Default()) with
// the reason and the error, never the token. Unlike Sessions.Begin it does
// not record the token as used: a copy of it can be presented again until
// it expires. Handler panics if v or next is nil.
func Handler(v *verify.SignupVerifier, cfg *Config, next func(w http.ResponseWriter, r *http.Request, c verify.SignupClaims)) http.Handler {
	if v == nil || next == nil {
		panic("signup: Handler: nil verifier or next")
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	logger := c.Log()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			refuse(w, http.StatusMethodNotAllowed, "sign-up requires POST")
			return
		}
		token, err := signupTokenFromRequest(w, r)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				logRefusal(logger, r, "body too large", err)
				refuse(w, http.StatusRequestEntityTooLarge, "sign-up request body too large")
				return
			}
			logRefusal(logger, r, string(verify.ErrTokenMalformed), err)
			refuse(w, http.StatusBadRequest, "malformed sign-up request")
			return
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			var te *verify.TokenError
			reason := verify.ErrTokenMalformed
			if errors.As(err, &te) {
				reason = te.Reason
			}
			logRefusal(logger, r, string(reason), err)
			switch reason {
			case verify.ErrTokenMissing, verify.ErrTokenMalformed, verify.ErrTokenTooLarge:
				refuse(w, http.StatusBadRequest, "sign-up token refused: "+string(reason))
			case verify.ErrKeysUnavailable:
				w.Header().Set("Retry-After", "30")
				refuse(w, http.StatusServiceUnavailable, "sign-up temporarily unavailable, try again shortly")
			default:
				refuse(w, http.StatusUnauthorized, "sign-up token refused: "+string(reason))
			}
			return
		}
		next(w, r, claims)
	})
}

// signupTokenFromRequest returns the token from the POST form, else the
// header; "" if neither has it.
func signupTokenFromRequest(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxSignupBody)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", fmt.Errorf("content type: %w", err)
		}
		switch mediaType {
		case "application/x-www-form-urlencoded":
			if err := r.ParseForm(); err != nil {
				return "", fmt.Errorf("parse form: %w", err)
			}
		case "multipart/form-data":
			if err := r.ParseMultipartForm(maxSignupBody); err != nil {
				return "", fmt.Errorf("parse multipart form: %w", err)
			}
		}
	}
	if tok := strings.TrimSpace(r.PostForm.Get(verify.SignupTokenField)); tok != "" {
		return tok, nil
	}
	return strings.TrimSpace(r.Header.Get(verify.SignupTokenField)), nil
}

func logRefusal(logger *slog.Logger, r *http.Request, reason string, err error) {
	logger.LogAttrs(r.Context(), slog.LevelWarn, "signup: sign-up refused",
		slog.String("reason", reason),
		slog.String("error", err.Error()),
		slog.String("remote_addr", r.RemoteAddr))
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}
