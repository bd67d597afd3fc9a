package signup

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// ErrTokenReplayed: the sign-up token was already used to start a sign-up
// (Sessions.Begin). It is a verify.TokenReason, so a refused token's
// *verify.TokenError carries it like the verifier's own reasons. A sign-up token is a bearer credential for a
// Procurement account for its whole lifetime; once one browser has started
// the sign-up with it, any other presentation is a copy.
const ErrTokenReplayed verify.TokenReason = "token already used"

// UsedTokens remembers which sign-up tokens have been used, so that each
// token starts one sign-up only (Sessions). memstore, sqlitestore and
// pgstore implement it; storetest checks it for any store that does.
//
// Keys are opaque strings chosen by the SDK (64 hexadecimal characters,
// derived from the verified claims and the decoded signature, never the raw
// token). A key must be remembered at least until its expiry; records past
// it are only kept until PruneUsedTokens deletes them.
type UsedTokens interface {
	// UseToken records key as used, to be remembered until at least
	// expires. first is false if key is already recorded. Of concurrent
	// calls with the same key (from any process sharing the store),
	// exactly one returns first true. An empty key is an error (the SDK's
	// stores wrap marketplace.ErrInvalid).
	UseToken(ctx context.Context, key string, expires time.Time) (first bool, err error)
	// PruneUsedTokens deletes the records whose expiry is strictly before
	// before, and returns how many it deleted.
	PruneUsedTokens(ctx context.Context, before time.Time) (int, error)
}

// signupTokenKey identifies a verified sign-up token for UsedTokens: a
// SHA-256 over sub, iat and the decoded signature bytes. The raw token
// string is no key: its signature segment can be changed without breaking
// the signature (line breaks, unused low bits of the last base64 character,
// padding), so one token has many spellings. The decoded bytes have one.
// The RSA signature itself cannot be altered and still verify: Go requires
// it to be exactly the modulus' length and less than the modulus.
func signupTokenKey(token string, c verify.SignupClaims) (string, error) {
	segs := strings.Split(token, ".")
	if len(segs) != 3 {
		return "", fmt.Errorf("want 3 segments, got %d", len(segs))
	}
	// The verifier has accepted this token, so the segment decodes as the
	// JWT library decoded it; decode it as leniently, to the same bytes.
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(segs[2], "="))
	if err != nil {
		return "", fmt.Errorf("signature segment: %w", err)
	}
	if len(sig) == 0 {
		return "", fmt.Errorf("empty signature")
	}
	h := sha256.New()
	// Length-prefixed fields, so that no two claim sets hash alike.
	for _, f := range [][]byte{[]byte("gcpmarketplace sign-up token v1"), []byte(c.AccountID),
		[]byte(strconv.FormatInt(c.IssuedAt.Unix(), 10)), sig} {
		h.Write([]byte(strconv.Itoa(len(f)) + ":"))
		h.Write(f)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
