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

// tokenDates holds the date claims undecoded, to check their JSON type:
// the jwt package decodes a NumericDate through json.Number, which also
// accepts a numeric string such as "1767600000".
type tokenDates struct {
	Exp json.RawMessage `json:"exp"`
	Iat json.RawMessage `json:"iat"`
	Nbf json.RawMessage `json:"nbf"`
}

// check requires every date claim present to be a JSON number, as RFC 7519
// section 2 defines NumericDate.
func (d tokenDates) check() error {
	for _, c := range []struct {
		name string
		raw  json.RawMessage
	}{{"exp", d.Exp}, {"iat", d.Iat}, {"nbf", d.Nbf}} {
		if len(c.raw) == 0 {
			continue
		}
		if first := c.raw[0]; first != '-' && (first < '0' || first > '9') {
			return fmt.Errorf("%s is %s, not a JSON number", c.name, truncate(string(c.raw), 32))
		}
	}
	return nil
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

// peekToken reads alg from the header and iss from the payload without
// verifying anything, so both can be checked before any key is fetched,
// and refuses a crit header and date claims that are not JSON numbers.
// The header is decoded into a map and the payload into a struct, exactly
// as the jwt package decodes them afterwards.
func peekToken(token string) (alg, iss string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("%d segments, want 3", len(parts))
	}
	b64 := base64.RawURLEncoding.Strict()
	headerJSON, err := b64.DecodeString(parts[0])
	if err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	var header map[string]any
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	alg, ok := header["alg"].(string)
	if !ok {
		return "", "", errors.New("header: alg missing or not a string")
	}
	if err := checkCritical(header); err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	payloadJSON, err := b64.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("payload: %w", err)
	}
	var payload struct {
		Issuer string `json:"iss"`
		tokenDates
	}
	if err := json.Unmarshal(payloadJSON, &payload); err != nil {
		return "", "", fmt.Errorf("payload: %w", err)
	}
	if err := payload.check(); err != nil {
		return "", "", fmt.Errorf("payload: %w", err)
	}
	return alg, payload.Issuer, nil
}
