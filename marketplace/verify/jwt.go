package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// This file holds the RS256 verification core that every verifier runs,
// built on github.com/golang-jwt/jwt/v5; tokencheck.go holds the checks it
// adds to the jwt package's.

// jwtCheck is the RS256 verification every verifier runs.
type jwtCheck struct {
	kind      string   // "sign-up", "push" or "software-statement"
	issuers   []string // accepted iss values, compared before any key is fetched
	audiences []string
	leeway    time.Duration
	now       func() time.Time
	keys      *keyCache
	// keysByIssuer, when set, holds a key cache per accepted issuer and
	// replaces keys: for a verifier whose issuers each publish their own
	// keys (the statement verifier without StatementCertsURL).
	keysByIssuer map[string]*keyCache
	// parser is built once by withParser (it is safe for concurrent use:
	// parsing only reads it); nil builds one per token.
	parser *jwt.Parser
}

// withParser returns j with its parser built, for the constructors.
func (j jwtCheck) withParser() jwtCheck {
	j.parser = j.newParser()
	return j
}

// newParser is the jwt parser of j's checks. iss is not among them: the
// key function compares it with j.issuers, before any key is fetched.
func (j *jwtCheck) newParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		// Unused low bits set in a segment's last character would give the
		// same token another spelling.
		jwt.WithStrictDecoding(),
		jwt.WithAudience(j.audiences...),
		jwt.WithLeeway(j.leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(j.now),
	)
}

func (j *jwtCheck) tokenErr(reason TokenReason, err error) *TokenError {
	return &TokenError{Reason: reason, Err: err, Kind: j.kind}
}

// verify checks token and decodes its claims into claims (a pointer to a
// struct embedding registeredClaims). The order matters: size and
// spelling, then alg and crit from the unverified header, then the payload
// (decoded once, dates as JSON numbers) and its iss, and only then the key
// by kid from the pinned key URL, the signature, the time and audience
// claims, the lifetime and sub.
func (j *jwtCheck) verify(ctx context.Context, token string, claims jwt.Claims) error {
	if token == "" {
		return j.tokenErr(ErrTokenMissing, nil)
	}
	if len(token) > MaxTokenSize {
		return j.tokenErr(ErrTokenTooLarge, fmt.Errorf("%d bytes, the limit is %d", len(token), MaxTokenSize))
	}
	if err := checkTokenAlphabet(token); err != nil {
		return j.tokenErr(ErrTokenMalformed, err)
	}
	alg, err := peekHeader(token)
	if err != nil {
		return j.tokenErr(ErrTokenMalformed, err)
	}
	if alg != jwt.SigningMethodRS256.Alg() {
		return j.tokenErr(ErrTokenAlgorithm, fmt.Errorf("alg %q, want RS256", truncate(alg, 32)))
	}

	parser := j.parser
	if parser == nil {
		parser = j.newParser()
	}
	_, err = parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// The jwt package calls this after decoding the payload and before
		// checking anything with a key: iss is compared here, so a token
		// naming another key URL never causes a request.
		iss, _ := t.Claims.GetIssuer()
		if !slices.Contains(j.issuers, iss) {
			return nil, j.tokenErr(ErrTokenIssuer, fmt.Errorf("iss %q", truncate(iss, 128)))
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, j.tokenErr(ErrTokenUnknownKey, errors.New("no kid header"))
		}
		keys := j.keys
		if c, ok := j.keysByIssuer[iss]; ok {
			keys = c
		}
		key, err := keys.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		if len(t.Signature) != key.Size() {
			return nil, j.tokenErr(ErrTokenMalformed, fmt.Errorf("signature is %d bytes, an RS256 signature by key %q is %d", len(t.Signature), truncate(kid, 64), key.Size()))
		}
		return key, nil
	})
	if err != nil {
		return j.classify(err, claims)
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat == nil || exp == nil {
		return j.tokenErr(ErrTokenMalformed, errors.New("iat and exp claims are required"))
	}
	if err := checkLifetime(iat.Time, exp.Time); err != nil {
		return j.tokenErr(ErrTokenLifetime, err)
	}
	sub, _ := claims.GetSubject()
	if err := checkSubject(sub); err != nil {
		return j.tokenErr(ErrTokenSubject, err)
	}
	return nil
}

// classify turns a jwt parse error into a *TokenError. When several claims
// are wrong the first in this order wins: expiry, issue time, audience,
// issuer.
func (j *jwtCheck) classify(err error, claims jwt.Claims) error {
	var te *TokenError
	if errors.As(err, &te) {
		return te // from the Keyfunc
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return j.tokenErr(ErrTokenMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return j.tokenErr(ErrTokenSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return j.tokenErr(ErrTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return j.tokenErr(ErrTokenIssuedInFuture, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		aud, _ := claims.GetAudience()
		return j.tokenErr(ErrTokenAudience, fmt.Errorf("aud %q: %w", truncate(strings.Join(aud, ","), 128), err))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return j.tokenErr(ErrTokenIssuer, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		if aud, _ := claims.GetAudience(); len(aud) == 0 || (len(aud) == 1 && aud[0] == "") {
			return j.tokenErr(ErrTokenAudience, err)
		}
		return j.tokenErr(ErrTokenMalformed, err)
	default:
		return j.tokenErr(ErrTokenMalformed, err)
	}
}
