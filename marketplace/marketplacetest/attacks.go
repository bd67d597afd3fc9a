package marketplacetest

// This file holds the attacks an independent suite got past verifiers
// (re-spelled tokens, crit headers, string dates, unbounded lifetimes,
// path-like subjects, Unicode look-alike emails, redirected key endpoints),
// so that verifiers can be tested against them over the real wire.

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// More BadToken kinds. Each applies to sign-up and push tokens unless noted.
const (
	// BadTokenCritHeader has a crit header naming an extension no verifier
	// implements (RFC 7515 section 4.1.11 says refuse).
	BadTokenCritHeader BadToken = "crit-header"
	// BadTokenSignatureNewline is a genuine token with a line break in the
	// middle of its signature segment, which lenient base64 decoders skip.
	BadTokenSignatureNewline BadToken = "signature-newline"
	// BadTokenSignatureLowBits is a genuine token whose signature segment
	// ends in a character with its unused low bits set, which lenient
	// base64 decoders ignore.
	BadTokenSignatureLowBits BadToken = "signature-low-bits"
	// BadTokenLongLifetime is valid for ten years (exp − iat).
	BadTokenLongLifetime BadToken = "long-lifetime"
	// BadTokenStringExpiry has exp as a numeric string ("1767600000").
	BadTokenStringExpiry BadToken = "string-exp"
	// BadTokenSubjectPath has sub "../../providers/other/accounts/x".
	BadTokenSubjectPath BadToken = "subject-path"
	// BadTokenUnicodeEmail (push only) names the push service account with
	// its first 's' replaced by 'ſ' (U+017F), which Unicode case folding
	// takes for an 's'.
	BadTokenUnicodeEmail BadToken = "unicode-email"
)

// AttackSubjectPath is the sub of BadTokenSubjectPath tokens.
const AttackSubjectPath = "../../providers/other/accounts/x"

// critHeader is the extra header of BadTokenCritHeader tokens.
func critHeader() map[string]any {
	return map[string]any{"crit": []string{"exp-ext"}, "exp-ext": true}
}

// longExpiry is the exp of a BadTokenLongLifetime token issued at iat.
func longExpiry(iat time.Time) time.Time { return iat.AddDate(10, 0, 0) }

// stringExpiry is the claim edit of a BadTokenStringExpiry token.
func stringExpiry(exp time.Time) map[string]any {
	return map[string]any{"exp": strconv.FormatInt(exp.Unix(), 10)}
}

// unicodeLookalike replaces the first 's' of email with 'ſ' (U+017F).
func unicodeLookalike(email string) string { return strings.Replace(email, "s", "ſ", 1) }

// respell applies a re-spelling attack (BadTokenSignatureNewline,
// BadTokenSignatureLowBits) to a genuine token: the result decodes to the
// same bytes with a lenient decoder.
func respell(kind BadToken, token string) (string, error) {
	i := strings.LastIndexByte(token, '.')
	head, sig := token[:i+1], token[i+1:]
	if len(sig) < 2 {
		return "", errors.New("marketplacetest: respell: no signature")
	}
	switch kind {
	case BadTokenSignatureNewline:
		return head + sig[:len(sig)/2] + "\n" + sig[len(sig)/2:], nil
	case BadTokenSignatureLowBits:
		// A raw base64 segment of n bytes leaves (6 - 8n mod 6) mod 6
		// bits of its last character unused; flipping the lowest changes
		// the spelling, not the bytes.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		if len(sig)%4 == 0 {
			return "", errors.New("marketplacetest: respell: the signature has no unused bits")
		}
		last := strings.IndexByte(alphabet, sig[len(sig)-1])
		return head + sig[:len(sig)-1] + string(alphabet[last^1]), nil
	default:
		return "", errors.New("marketplacetest: respell: not a re-spelling attack: " + string(kind))
	}
}

// attackerPushJWKSPath serves the foreign push key as a JWK Set: where a
// redirected PushJWKSURL points.
const attackerPushJWKSPath = "/attacker/oauth2/v3/certs"

// RedirectKeysToAttacker(true) makes the key endpoints CertsURL and
// PushJWKSURL answer 302 Found to the attacker's copies (AttackerCertsURL,
// and a JWK Set of the same foreign key for push), which serve the key that
// signs ForeignKey tokens under its own kid. A verifier that follows the
// redirect then accepts a token minted with ForeignKey and no KeyID; one
// that fetches keys only from the URL it was given refuses it.
// RedirectKeysToAttacker(false) restores the endpoints.
func (s *Server) RedirectKeysToAttacker(on bool) {
	s.signup.redirect.Store(on)
	s.push.redirect.Store(on)
}

// redirecting wraps a key endpoint: while redirect is on it answers 302 to
// target instead.
func redirecting(on interface{ Load() bool }, target func() string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if on.Load() {
			http.Redirect(w, r, target(), http.StatusFound)
			return
		}
		next(w, r)
	}
}
