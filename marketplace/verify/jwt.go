package verify

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// This file holds the RS256 verification core that both verifiers run;
// tokencheck.go holds the checks it makes on the unverified token. It is
// written on the standard library alone (crypto/rsa), so that importing
// package verify, and package marketplace, which takes a *PushVerifier,
// links no JWT library: a compact JWS with one algorithm and six
// registered claims needs none, and each step below is one the verifiers
// define rather than a library default.

// jwtCheck is the RS256 verification both verifiers run.
type jwtCheck struct {
	kind      string   // "sign-up" or "push"
	issuers   []string // accepted iss values, compared before any key is fetched
	audiences []string
	leeway    time.Duration
	now       func() time.Time
	keys      *keyCache
}

func (j *jwtCheck) tokenErr(reason TokenReason, err error) *TokenError {
	return &TokenError{Reason: reason, Err: err, Kind: j.kind}
}

// registeredClaims are the RFC 7519 claims the verifiers check. A token's
// claims struct embeds it.
type registeredClaims struct {
	Issuer    string       `json:"iss"`
	Subject   string       `json:"sub"`
	Audience  claimStrings `json:"aud"`
	ExpiresAt *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
	IssuedAt  *numericDate `json:"iat"`
}

func (c *registeredClaims) registered() *registeredClaims { return c }

// tokenClaims is a pointer to a claims struct embedding registeredClaims.
type tokenClaims interface{ registered() *registeredClaims }

// numericDate is an RFC 7519 NumericDate: seconds since the epoch, whole
// seconds kept. tokencheck.go has already required a JSON number.
type numericDate struct{ time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("date: %w", err)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("date %s out of range", truncate(string(b), 32))
	}
	d.Time = time.Unix(int64(f), 0)
	return nil
}

// claimStrings is aud: a string or a list of strings.
type claimStrings []string

func (s *claimStrings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = claimStrings{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("aud: want a string or a list of strings: %w", err)
	}
	*s = list
	return nil
}

// verify checks token and decodes its claims into claims. The order
// matters: size and spelling, then alg, crit, iss and the date types from
// the unverified token, the claims' JSON, and only then the key by kid from
// the pinned key URL, the signature, the time and audience claims, the
// lifetime and sub.
func (j *jwtCheck) verify(ctx context.Context, token string, claims tokenClaims) error {
	if token == "" {
		return j.tokenErr(ErrTokenMissing, nil)
	}
	if len(token) > MaxTokenSize {
		return j.tokenErr(ErrTokenTooLarge, fmt.Errorf("%d bytes, the limit is %d", len(token), MaxTokenSize))
	}
	if err := checkTokenAlphabet(token); err != nil {
		return j.tokenErr(ErrTokenMalformed, err)
	}
	p, err := peekToken(token)
	if err != nil {
		return j.tokenErr(ErrTokenMalformed, err)
	}
	if p.alg != "RS256" {
		return j.tokenErr(ErrTokenAlgorithm, fmt.Errorf("alg %q, want RS256", truncate(p.alg, 32)))
	}
	if !slices.Contains(j.issuers, p.iss) {
		return j.tokenErr(ErrTokenIssuer, fmt.Errorf("iss %q", truncate(p.iss, 128)))
	}
	if err := json.Unmarshal(p.payload, claims); err != nil {
		return j.tokenErr(ErrTokenMalformed, fmt.Errorf("payload: %w", err))
	}
	// Strict: unused low bits set in the last character would give the
	// same signature another spelling.
	sig, err := base64.RawURLEncoding.Strict().DecodeString(p.sig)
	if err != nil {
		return j.tokenErr(ErrTokenMalformed, fmt.Errorf("signature: %w", err))
	}
	if p.kid == "" {
		return j.tokenErr(ErrTokenUnknownKey, errors.New("no kid header"))
	}
	key, err := j.keys.key(ctx, p.kid)
	if err != nil {
		return err
	}
	if len(sig) != key.Size() {
		return j.tokenErr(ErrTokenMalformed, fmt.Errorf("signature is %d bytes, an RS256 signature by key %q is %d", len(sig), truncate(p.kid, 64), key.Size()))
	}
	digest := sha256.Sum256([]byte(p.signed))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
		return j.tokenErr(ErrTokenSignature, err)
	}
	c := claims.registered()
	if err := j.checkClaims(c); err != nil {
		return err
	}
	if err := checkLifetime(c.IssuedAt.Time, c.ExpiresAt.Time); err != nil {
		return j.tokenErr(ErrTokenLifetime, err)
	}
	if err := checkSubject(c.Subject); err != nil {
		return j.tokenErr(ErrTokenSubject, err)
	}
	return nil
}

// checkClaims checks the time, audience and issuer claims of a token whose
// signature verified. When several are wrong the first in this order wins:
// expiry, issue time (iat, then nbf), audience, issuer, and last a required
// claim missing (aud, then exp and iat).
func (j *jwtCheck) checkClaims(c *registeredClaims) error {
	now := j.now()
	switch {
	case c.ExpiresAt != nil && !now.Before(c.ExpiresAt.Add(j.leeway)):
		return j.tokenErr(ErrTokenExpired, fmt.Errorf("exp %s, now %s, leeway %v",
			c.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), j.leeway))
	case c.IssuedAt != nil && now.Before(c.IssuedAt.Add(-j.leeway)):
		return j.tokenErr(ErrTokenIssuedInFuture, fmt.Errorf("iat %s, now %s, leeway %v",
			c.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), j.leeway))
	case c.NotBefore != nil && now.Before(c.NotBefore.Add(-j.leeway)):
		return j.tokenErr(ErrTokenIssuedInFuture, fmt.Errorf("nbf %s, now %s, leeway %v",
			c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), j.leeway))
	}
	noAud := len(c.Audience) == 0 || (len(c.Audience) == 1 && c.Audience[0] == "")
	if !noAud && matchedAudience(c.Audience, j.audiences) == "" {
		return j.tokenErr(ErrTokenAudience, fmt.Errorf("aud %q", truncate(strings.Join(c.Audience, ","), 128)))
	}
	if !slices.Contains(j.issuers, c.Issuer) {
		// peekToken read the same iss; this only guards against a change
		// that would make the two readings differ.
		return j.tokenErr(ErrTokenIssuer, fmt.Errorf("iss %q", truncate(c.Issuer, 128)))
	}
	switch {
	case noAud:
		return j.tokenErr(ErrTokenAudience, errors.New("aud claim is required"))
	case c.ExpiresAt == nil || c.IssuedAt == nil:
		return j.tokenErr(ErrTokenMalformed, errors.New("iat and exp claims are required"))
	}
	return nil
}

// matchedAudience is the first of the token's audiences that is configured.
func matchedAudience(tokenAud []string, configured []string) string {
	for _, a := range tokenAud {
		if slices.Contains(configured, a) {
			return a
		}
	}
	return ""
}
