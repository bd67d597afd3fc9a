package marketplacetest

// This file holds the ways a token can be wrong (BadToken), the one switch
// that makes a sign-up or push token wrong in each of them, and the
// endpoints an attacker would serve keys from, so that verifiers can be
// tested against every attack over the real wire.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SignupAttackTokens lists every BadToken kind that applies to sign-up JWTs,
// for table-driven attack suites. It returns a new slice on every call.
func SignupAttackTokens() []BadToken { return slices.Clone(signupTokens.attacks) }

// PushAttackTokens lists every BadToken kind that applies to push tokens,
// for table-driven attack suites. It returns a new slice on every call.
func PushAttackTokens() []BadToken { return slices.Clone(pushTokens.attacks) }

// attack edits p so that its token is wrong in the one way p.Bad names. A
// re-spelling of the signed token is returned as after, for mint to apply.
func (i *issuer) attack(p *TokenParams) (after func(string) (string, error), err error) {
	kind := p.Bad
	if !slices.Contains(i.kind.attacks, kind) {
		return nil, fmt.Errorf("marketplacetest: bad token kind %q does not apply to %s tokens", kind, i.kind.name)
	}
	now := i.now()
	iat := p.IssuedAt
	if iat.IsZero() {
		iat = now
	}
	switch kind {
	case BadTokenAlgNone:
		p.Alg = AlgNone
	case BadTokenHS256PublicKey:
		p.Alg = AlgHS256PublicKey
	case BadTokenWrongIssuer:
		p.Issuer = i.kind.wrongIssuer
	case BadTokenAttackerIssuer:
		p.Issuer, p.ForeignKey = i.attackerCertsURL(), true
	case BadTokenWrongAudience:
		p.Audience = badTokenAudience
	case BadTokenExpired:
		p.IssuedAt, p.ExpiresAt = now.Add(-time.Hour-i.kind.lifetime), now.Add(-time.Hour)
	case BadTokenIssuedInFuture:
		p.IssuedAt = now.Add(time.Hour)
	case BadTokenEmptySubject:
		p.Subject, p.EmptySubject = "", true
	case BadTokenUnknownKeyID:
		p.ForeignKey, p.KeyID = true, "0000000000000000000000000000000000000000"
	case BadTokenForeignKey:
		key, err := i.ring.current()
		if err != nil {
			return nil, err
		}
		p.ForeignKey, p.KeyID = true, key.kid
	case BadTokenTamperedPayload:
		after = tamperPayload
	case BadTokenTruncated:
		after = func(tok string) (string, error) { return truncateSignature(tok), nil }
	case BadTokenOversize:
		p.Extra = withClaims(p.Extra, map[string]any{"padding": strings.Repeat("A", OversizeTokenLen)})
	case BadTokenWrongEmail:
		p.Email = "someone-else@attacker-project.iam.gserviceaccount.com"
	case BadTokenEmailNotVerified:
		p.EmailVerified = new(bool)
	case BadTokenCritHeader:
		p.Header = critHeader()
	case BadTokenSignatureNewline, BadTokenSignatureLowBits:
		after = func(tok string) (string, error) { return respell(kind, tok) }
	case BadTokenLongLifetime:
		p.ExpiresAt = longExpiry(iat)
	case BadTokenStringExpiry:
		p.Extra = withClaims(p.Extra, stringExpiry(iat.Add(i.kind.lifetime)))
	case BadTokenSubjectPath:
		p.Subject = AttackSubjectPath
	case BadTokenUnicodeEmail:
		p.Email = unicodeLookalike(i.email)
	default:
		if i.kind.edit != nil {
			i.kind.edit(kind, p)
		}
	}
	return after, nil
}

// withClaims returns a copy of extra with the claims of add set.
func withClaims(extra, add map[string]any) map[string]any {
	out := maps.Clone(extra)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, add)
	return out
}

// OversizeTokenLen is the minimum length of the BadTokenOversize token:
// far above any real Google token (about 1 KiB) but under net/http's default
// 1 MiB header limit, so the code under test has to enforce its own limit.
const OversizeTokenLen = 256 << 10

// BadToken names one way a token can be wrong. Each kind is rejected by a
// correct verifier for one reason only; everything else about the token is
// genuine.
type BadToken string

const (
	BadTokenAlgNone          BadToken = "alg-none"           // unsigned, "alg":"none"
	BadTokenHS256PublicKey   BadToken = "hs256-public-key"   // HMAC keyed with the served public key
	BadTokenWrongIssuer      BadToken = "wrong-issuer"       // genuine key, iss of another Google account
	BadTokenAttackerIssuer   BadToken = "attacker-issuer"    // iss = AttackerCertsURL, signed by the key served there
	BadTokenWrongAudience    BadToken = "wrong-audience"     // aud of another product
	BadTokenExpired          BadToken = "expired"            // exp one hour ago
	BadTokenIssuedInFuture   BadToken = "issued-in-future"   // iat one hour ahead
	BadTokenEmptySubject     BadToken = "empty-subject"      // "sub":""
	BadTokenUnknownKeyID     BadToken = "unknown-kid"        // kid the key endpoints do not list
	BadTokenForeignKey       BadToken = "foreign-key"        // genuine kid, signed by another key
	BadTokenTamperedPayload  BadToken = "tampered-payload"   // payload edited after signing
	BadTokenTruncated        BadToken = "truncated"          // signature cut off in transit
	BadTokenOversize         BadToken = "oversize"           // validly signed but OversizeTokenLen long
	BadTokenWrongEmail       BadToken = "wrong-email"        // push only: another service account
	BadTokenEmailNotVerified BadToken = "email-not-verified" // push only: email_verified false

	// The kinds below apply to sign-up and push tokens unless noted.

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

// badTokenAudience is the aud of BadTokenWrongAudience tokens.
const badTokenAudience = "https://attacker.example.com"

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

// tamperPayload replaces the payload of a signed token with one whose sub
// names another account, keeping the original signature.
func tamperPayload(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("marketplacetest: tamper: not a JWS compact token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	claims["sub"] = "attacker-chosen-account"
	edited, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(edited)
	return strings.Join(parts, "."), nil
}

// truncateSignature cuts the signature in half, and encodes the half
// canonically so that only its length is wrong.
func truncateSignature(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return token[:i+1]
	}
	return token[:i+1] + base64.RawURLEncoding.EncodeToString(sig[:len(sig)/2])
}

// attackerPushJWKSPath serves the foreign push key as a JWK Set: where a
// redirected PushJWKSURL points.
const attackerPushJWKSPath = "/attacker/oauth2/v3/certs"

// RedirectKeysToAttacker(true) makes the key endpoints CertsURL,
// StatementCertsURL and PushJWKSURL answer 302 Found to the attacker's
// copies (AttackerCertsURL, the same for statements, and a JWK Set of the
// foreign key for push), which serve the key that signs ForeignKey tokens
// under its own kid. A verifier that follows the
// redirect then accepts a token minted with ForeignKey and no KeyID; one
// that fetches keys only from the URL it was given refuses it.
// RedirectKeysToAttacker(false) restores the endpoints.
func (s *Server) RedirectKeysToAttacker(on bool) {
	s.signup.redirect.Store(on)
	s.push.redirect.Store(on)
	s.statement.redirect.Store(on)
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
