package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

const pushTestAudience = "https://vendor.example.com/marketplace/push"

type pushTestEnv struct {
	s   *marketplacetest.Server
	log *authRequestLog
	v   *verify.PushVerifier
}

// newPushTestEnv makes a verifier requiring the emulator's push service
// account, fetching keys through a recording client.
func newPushTestEnv(t *testing.T, edits ...func(*verify.Config)) pushTestEnv {
	t.Helper()
	s := marketplacetest.New(t)
	rl := &authRequestLog{}
	cfg := &verify.Config{
		Runtime:            gcpmarketplace.Runtime{Clock: s.Clock().Now},
		PushJWKSURL:        s.PushJWKSURL(),
		HTTPClient:         &http.Client{Transport: rl},
		PushServiceAccount: s.PushServiceAccount(),
	}
	for _, edit := range edits {
		edit(cfg)
	}
	v, err := verify.NewPushVerifier(pushTestAudience, cfg)
	require.NoError(t, err)
	return pushTestEnv{s: s, log: rl, v: v}
}

func (e pushTestEnv) requireOnlyJWKSFetched(t *testing.T, n int) {
	t.Helper()
	reqs := e.log.requests()
	for _, u := range reqs {
		require.Equal(t, e.s.PushJWKSURL(), u)
	}
	require.Len(t, reqs, n, "key fetches")
}

func pushBearerRequest(t *testing.T, tok string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, pushTestAudience, strings.NewReader("{}"))
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestVerifyPushRequestGood(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	now := e.s.Clock().Now()
	c, err := e.v.VerifyRequest(context.Background(), pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	require.NoError(t, err)
	assert.Equal(t, e.s.PushServiceAccount(), c.Email)
	assert.True(t, c.EmailVerified)
	assert.NotEmpty(t, c.Subject)
	assert.Equal(t, pushTestAudience, c.Audience)
	assert.Equal(t, "https://accounts.google.com", c.Issuer)
	assert.True(t, c.IssuedAt.Equal(now.Truncate(time.Second)))
	assert.Equal(t, marketplacetest.PushTokenLifetime, c.ExpiresAt.Sub(c.IssuedAt))

	// The other Google issuer spelling, and a lower-case scheme.
	tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Issuer: "accounts.google.com"})
	r := pushBearerRequest(t, tok)
	r.Header.Set("Authorization", "bearer "+tok)
	c, err = e.v.VerifyRequest(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, "accounts.google.com", c.Issuer)
	e.requireOnlyJWKSFetched(t, 1)
}

var pushAttackReasons = map[marketplacetest.BadToken]verify.TokenReason{
	marketplacetest.BadTokenAlgNone:          verify.ErrTokenAlgorithm,
	marketplacetest.BadTokenHS256PublicKey:   verify.ErrTokenAlgorithm,
	marketplacetest.BadTokenWrongIssuer:      verify.ErrTokenIssuer,
	marketplacetest.BadTokenWrongAudience:    verify.ErrTokenAudience,
	marketplacetest.BadTokenExpired:          verify.ErrTokenExpired,
	marketplacetest.BadTokenIssuedInFuture:   verify.ErrTokenIssuedInFuture,
	marketplacetest.BadTokenEmptySubject:     verify.ErrTokenSubject,
	marketplacetest.BadTokenUnknownKeyID:     verify.ErrTokenUnknownKey,
	marketplacetest.BadTokenForeignKey:       verify.ErrTokenSignature,
	marketplacetest.BadTokenTamperedPayload:  verify.ErrTokenSignature,
	marketplacetest.BadTokenTruncated:        verify.ErrTokenMalformed,
	marketplacetest.BadTokenOversize:         verify.ErrTokenTooLarge,
	marketplacetest.BadTokenWrongEmail:       verify.ErrTokenEmail,
	marketplacetest.BadTokenEmailNotVerified: verify.ErrTokenEmailUnverified,
	marketplacetest.BadTokenCritHeader:       verify.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureNewline: verify.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureLowBits: verify.ErrTokenMalformed,
	marketplacetest.BadTokenLongLifetime:     verify.ErrTokenLifetime,
	marketplacetest.BadTokenStringExpiry:     verify.ErrTokenMalformed,
	marketplacetest.BadTokenSubjectPath:      verify.ErrTokenSubject,
	marketplacetest.BadTokenUnicodeEmail:     verify.ErrTokenEmail,
}

func TestVerifyPushRequestAttacks(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	require.Len(t, marketplacetest.PushAttackTokens(), len(pushAttackReasons))
	for _, kind := range marketplacetest.PushAttackTokens() {
		want, ok := pushAttackReasons[kind]
		require.True(t, ok, "no expected reason for attack %q", kind)
		tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Bad: kind})
		c, err := e.v.VerifyRequest(context.Background(), pushBearerRequest(t, tok))
		requireAuthReason(t, err, want)
		assert.Zero(t, c)
		t.Logf("%-18s -> %v", kind, err)
	}
	e.requireOnlyJWKSFetched(t, 1)
}

func TestVerifyPushRequestAuthorizationHeader(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})
	cases := map[string]struct {
		values []string
		want   verify.TokenReason
	}{
		"missing":           {nil, verify.ErrTokenMissing},
		"basic":             {[]string{"Basic dXNlcjpwYXNz"}, verify.ErrTokenMalformed},
		"bearer, no token":  {[]string{"Bearer"}, verify.ErrTokenMalformed},
		"bearer, blank":     {[]string{"Bearer   "}, verify.ErrTokenMalformed},
		"two headers":       {[]string{"Bearer " + tok, "Bearer " + tok}, verify.ErrTokenMalformed},
		"token without tag": {[]string{tok}, verify.ErrTokenMalformed},
	}
	for name, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, pushTestAudience, nil)
		for _, v := range tc.values {
			r.Header.Add("Authorization", v)
		}
		_, err := e.v.VerifyRequest(context.Background(), r)
		var te *verify.TokenError
		if assert.ErrorAs(t, err, &te, name) {
			assert.Equal(t, tc.want, te.Reason, "%s: %v", name, err)
		}
	}
}

func TestVerifyPushRequestWithoutServiceAccount(t *testing.T) {
	t.Parallel()
	s := marketplacetest.New(t)
	v, err := verify.NewPushVerifier(pushTestAudience, &verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now},
		PushJWKSURL: s.PushJWKSURL(), AnyPushServiceAccount: true})
	require.NoError(t, err)
	// With AnyPushServiceAccount any Google-signed token for the
	// audience passes, whatever its email.
	tok := s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Bad: marketplacetest.BadTokenWrongEmail})
	c, err := v.VerifyRequest(context.Background(), pushBearerRequest(t, tok))
	require.NoError(t, err)
	assert.NotEqual(t, s.PushServiceAccount(), c.Email)
}

func TestVerifyPushRequestKeyRotationAndOutage(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	ctx := context.Background()
	_, err := e.v.VerifyRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	require.NoError(t, err)

	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotatePushKey())
	_, err = e.v.VerifyRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	require.NoError(t, err)
	e.requireOnlyJWKSFetched(t, 2)

	// The endpoint goes down just as the next rotation happens.
	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotatePushKey())
	e.log.setDown(true)
	_, err = e.v.VerifyRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	requireAuthReason(t, err, verify.ErrKeysUnavailable)
}

func TestNewPushVerifierRefusesBadConfig(t *testing.T) {
	t.Parallel()
	_, err := verify.NewPushVerifier("", &verify.Config{AnyPushServiceAccount: true})
	assert.Error(t, err)
	_, err = verify.NewPushVerifier("a", &verify.Config{PushJWKSURL: "http://keys.example.com/", AnyPushServiceAccount: true})
	assert.Error(t, err)
	_, err = verify.NewPushVerifier("a", &verify.Config{PushServiceAccount: "not-an-email"})
	assert.Error(t, err)
	_, err = verify.NewPushVerifier("a", &verify.Config{PushServiceAccount: "sa@p.iam.gserviceaccount.com", Leeway: time.Hour})
	assert.Error(t, err)
	// The audience alone proves nothing: a service account, or the
	// explicit choice of any, is required.
	_, err = verify.NewPushVerifier("a", nil)
	assert.ErrorContains(t, err, "no service account")
	_, err = verify.NewPushVerifier("a", &verify.Config{PushServiceAccount: ""})
	assert.ErrorContains(t, err, "no service account")
	v, err := verify.NewPushVerifier("a", &verify.Config{PushServiceAccount: "sa@p.iam.gserviceaccount.com"})
	require.NoError(t, err)
	assert.NotNil(t, v)
	v, err = verify.NewPushVerifier("a", &verify.Config{AnyPushServiceAccount: true})
	require.NoError(t, err)
	assert.NotNil(t, v)
}

// A real push delivery from the emulator reaches an endpoint that verifies
// it before reading the body, stripe-style.
func TestVerifyPushRequestRealDelivery(t *testing.T) {
	t.Parallel()
	s := marketplacetest.New(t)
	var (
		mu       sync.Mutex
		verified []verify.PushClaims
		bodies   []string
	)
	var v *verify.PushVerifier
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.VerifyRequest(r.Context(), r)
		if err != nil {
			code := http.StatusUnauthorized
			var te *verify.TokenError
			if errors.As(err, &te) && te.Retryable() {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, "push token refused", code)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		verified = append(verified, c)
		bodies = append(bodies, string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(endpoint.Close)
	var err error
	v, err = verify.NewPushVerifier(endpoint.URL,
		&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now},
			PushJWKSURL: s.PushJWKSURL(), PushServiceAccount: s.PushServiceAccount()})
	require.NoError(t, err)
	ctx := context.Background()

	resp, err := s.Push(ctx, endpoint.URL, marketplacetest.PushParams{Audience: endpoint.URL, Data: []byte(`{"eventId":"e-1"}`), Attributes: map[string]string{"k": "v"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)

	for name, p := range map[string]marketplacetest.PushParams{
		"no token":       {NoToken: true},
		"wrong audience": {Audience: "https://other.example.com/push"},
		"garbage token":  {Token: "garbage"},
	} {
		resp, err := s.Push(ctx, endpoint.URL, p)
		require.NoError(t, err, name)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
	}

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, verified, 1)
	assert.Equal(t, s.PushServiceAccount(), verified[0].Email)
	var env struct {
		Message struct {
			Data       []byte
			Attributes map[string]string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(bodies[0]), &env))
	assert.JSONEq(t, `{"eventId":"e-1"}`, string(env.Message.Data))
	assert.Equal(t, "v", env.Message.Attributes["k"])
}
