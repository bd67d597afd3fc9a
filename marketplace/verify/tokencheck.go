package verify

// This file holds the checks jwtCheck makes on top of what the jwt package
// checks. Each closes a way an independent attack suite got a token, or a
// key, past the verifiers (issue 19, items 12-17); keeping them here, in
// the shared core, gives every verifier (sign-up, push, and any later one)
// the same rules.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// MaxTokenLifetime is the longest a token may be valid for, exp − iat, and
// is not configurable. Google's sign-up tokens live 5 minutes and the OIDC
// tokens of push deliveries one hour; a longer-lived token did not come
// from either flow, and would stay usable long after a leak.
const MaxTokenLifetime = time.Hour

// keyHTTPClient returns the client a key cache fetches with: a copy of c
// (the caller's client is not modified) that refuses every redirect. Keys
// are trusted because of the URL they come from; following a redirect, even
// from that URL, would trust whatever the redirect names instead.
func keyHTTPClient(c *http.Client) *http.Client {
	if c == nil {
		c = newKeyHTTPClient()
	}
	cp := *c
	cp.CheckRedirect = refuseKeyRedirect
	return &cp
}

func refuseKeyRedirect(req *http.Request, via []*http.Request) error {
	from := "the key URL"
	if len(via) > 0 {
		from = via[len(via)-1].URL.Redacted()
	}
	return fmt.Errorf("redirect from %s to %s refused: signing keys are fetched from the configured URL only",
		from, truncate(req.URL.Redacted(), 256))
}

// checkTokenAlphabet accepts only the characters of a compact JWS: base64url
// segments joined by dots. Go's base64 decoders skip CR and LF, so without
// this a token would have many spellings that all verify, and anything
// keyed on the token string (a log search, a used-token record) could be
// sidestepped by re-spelling it.
func checkTokenAlphabet(token string) error {
	for i := 0; i < len(token); i++ {
		if !jwsAlphabet[token[i]] {
			return fmt.Errorf("byte %q at offset %d is not base64url", token[i], i)
		}
	}
	return nil
}

// jwsAlphabet marks the bytes of a compact JWS: a table rather than
// comparisons, since every token is scanned in full.
var jwsAlphabet = func() (t [256]bool) {
	for _, c := range []byte(".-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t[c] = true
	}
	return t
}()

// checkCritical refuses any crit header: RFC 7515 section 4.1.11 requires a
// verifier to refuse a token whose crit names an extension it does not
// implement, and these verifiers implement none. Google does not send crit.
func checkCritical(header map[string]any) error {
	if crit, ok := header["crit"]; ok {
		return fmt.Errorf("header crit %s names extensions this verifier does not implement (RFC 7515 section 4.1.11)",
			truncate(fmt.Sprint(crit), 64))
	}
	return nil
}

// registeredClaims are the registered claims of every token the verifiers
// read, in place of jwt.RegisteredClaims: the same fields, decoded in the
// same pass as the rest of the payload, but with dates that must be JSON
// numbers, as RFC 7519 section 2 defines NumericDate. The jwt package's
// NumericDate is decoded through json.Number, which also accepts a numeric
// string such as "1767600000".
type registeredClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt strictDate       `json:"exp"`
	NotBefore strictDate       `json:"nbf"`
	IssuedAt  strictDate       `json:"iat"`
	ID        string           `json:"jti"`
}

// GetExpirationTime implements jwt.Claims.
func (c registeredClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.get() }

// GetIssuedAt implements jwt.Claims.
func (c registeredClaims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt.get() }

// GetNotBefore implements jwt.Claims.
func (c registeredClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore.get() }

// GetIssuer implements jwt.Claims.
func (c registeredClaims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c registeredClaims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c registeredClaims) GetAudience() (jwt.ClaimStrings, error) { return c.Audience, nil }

// strictDate is a NumericDate claim that must be a JSON number when
// present; JSON null is refused too. It is not a pointer so that
// encoding/json hands it null rather than skipping it.
type strictDate struct {
	jwt.NumericDate
	set bool
}

func (d *strictDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return fmt.Errorf("date claim %s is not a JSON number", truncate(string(b), 32))
	}
	if err := d.NumericDate.UnmarshalJSON(b); err != nil {
		return err
	}
	d.set = true
	return nil
}

func (d *strictDate) get() (*jwt.NumericDate, error) {
	if !d.set {
		return nil, nil
	}
	return &d.NumericDate, nil
}

// checkSubject requires sub to have the shape of a Procurement id (the
// account id of a sign-up token; the numeric service account id of a push
// token has it too). The app puts sub in Procurement resource names, its
// database and its logs: whitespace, path segments such as "../", control
// characters or kilobytes of text must not get that far.
func checkSubject(sub string) error {
	if sub == "" {
		return errors.New("sub is empty")
	}
	if !procurement.ValidID(sub) {
		return fmt.Errorf("sub %q (%d bytes) is not a valid account id: %w", truncate(sub, 64), len(sub), procurement.ErrInvalidName)
	}
	return nil
}

// checkLifetime bounds exp − iat to (0, MaxTokenLifetime].
func checkLifetime(iat, exp time.Time) error {
	life := exp.Sub(iat)
	if life <= 0 || life > MaxTokenLifetime {
		return fmt.Errorf("exp − iat is %v, the allowed maximum is %v", life, MaxTokenLifetime)
	}
	return nil
}

// peekHeader reads alg from the header without verifying anything, so it
// can be checked before the payload is decoded, and refuses a crit header.
// The header is decoded into a map, exactly as the jwt package decodes it
// afterwards. The payload is decoded once, by the jwt package, into claims
// built on registeredClaims (whose dates must be JSON numbers); iss is
// checked in the key function, before any key is fetched.
func peekHeader(token string) (alg string, err error) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", errors.New("1 segment, want 3")
	}
	headerJSON, err := base64.RawURLEncoding.Strict().DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	var header map[string]any
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	alg, ok = header["alg"].(string)
	if !ok {
		return "", errors.New("header: alg missing or not a string")
	}
	if err := checkCritical(header); err != nil {
		return "", fmt.Errorf("header: %w", err)
	}
	return alg, nil
}
