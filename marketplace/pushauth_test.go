package marketplace_test

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

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

const pushTestAudience = "https://vendor.example.com/marketplace/push"

type pushTestEnv struct {
	s   *marketplacetest.Server
	log *authRequestLog
	v   *marketplace.PushVerifier
}

// newPushTestEnv makes a verifier requiring the emulator's push service
// account, fetching keys through a recording client.
func newPushTestEnv(t *testing.T, opts ...marketplace.PushOption) pushTestEnv {
	t.Helper()
	s := marketplacetest.New(t)
	rl := &authRequestLog{}
	opts = append([]marketplace.PushOption{
		marketplace.WithPushJWKSURL(s.PushJWKSURL()),
		marketplace.WithPushHTTPClient(&http.Client{Transport: rl}),
		marketplace.WithPushClock(s.Clock().Now),
		marketplace.WithPushServiceAccount(s.PushServiceAccount()),
	}, opts...)
	v, err := marketplace.NewPushVerifier(pushTestAudience, opts...)
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
	c, err := e.v.VerifyPushRequest(context.Background(), pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
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
	c, err = e.v.VerifyPushRequest(context.Background(), r)
	require.NoError(t, err)
	assert.Equal(t, "accounts.google.com", c.Issuer)
	e.requireOnlyJWKSFetched(t, 1)
}

var pushAttackReasons = map[marketplacetest.BadToken]marketplace.TokenReason{
	marketplacetest.BadTokenAlgNone:          marketplace.ErrTokenAlgorithm,
	marketplacetest.BadTokenHS256PublicKey:   marketplace.ErrTokenAlgorithm,
	marketplacetest.BadTokenWrongIssuer:      marketplace.ErrTokenIssuer,
	marketplacetest.BadTokenWrongAudience:    marketplace.ErrTokenAudience,
	marketplacetest.BadTokenExpired:          marketplace.ErrTokenExpired,
	marketplacetest.BadTokenIssuedInFuture:   marketplace.ErrTokenIssuedInFuture,
	marketplacetest.BadTokenEmptySubject:     marketplace.ErrTokenSubject,
	marketplacetest.BadTokenUnknownKeyID:     marketplace.ErrTokenUnknownKey,
	marketplacetest.BadTokenForeignKey:       marketplace.ErrTokenSignature,
	marketplacetest.BadTokenTamperedPayload:  marketplace.ErrTokenSignature,
	marketplacetest.BadTokenTruncated:        marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenOversize:         marketplace.ErrTokenTooLarge,
	marketplacetest.BadTokenWrongEmail:       marketplace.ErrTokenEmail,
	marketplacetest.BadTokenEmailNotVerified: marketplace.ErrTokenEmailUnverified,
	marketplacetest.BadTokenCritHeader:       marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureNewline: marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureLowBits: marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenLongLifetime:     marketplace.ErrTokenLifetime,
	marketplacetest.BadTokenStringExpiry:     marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSubjectPath:      marketplace.ErrTokenSubject,
	marketplacetest.BadTokenUnicodeEmail:     marketplace.ErrTokenEmail,
}

func TestVerifyPushRequestAttacks(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	require.Len(t, marketplacetest.PushAttackTokens(), len(pushAttackReasons))
	for _, kind := range marketplacetest.PushAttackTokens() {
		want, ok := pushAttackReasons[kind]
		require.True(t, ok, "no expected reason for attack %q", kind)
		tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Bad: kind})
		c, err := e.v.VerifyPushRequest(context.Background(), pushBearerRequest(t, tok))
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
		want   marketplace.TokenReason
	}{
		"missing":           {nil, marketplace.ErrTokenMissing},
		"basic":             {[]string{"Basic dXNlcjpwYXNz"}, marketplace.ErrTokenMalformed},
		"bearer, no token":  {[]string{"Bearer"}, marketplace.ErrTokenMalformed},
		"bearer, blank":     {[]string{"Bearer   "}, marketplace.ErrTokenMalformed},
		"two headers":       {[]string{"Bearer " + tok, "Bearer " + tok}, marketplace.ErrTokenMalformed},
		"token without tag": {[]string{tok}, marketplace.ErrTokenMalformed},
	}
	for name, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, pushTestAudience, nil)
		for _, v := range tc.values {
			r.Header.Add("Authorization", v)
		}
		_, err := e.v.VerifyPushRequest(context.Background(), r)
		var te *marketplace.TokenError
		if assert.ErrorAs(t, err, &te, name) {
			assert.Equal(t, tc.want, te.Reason, "%s: %v", name, err)
		}
	}
}

func TestVerifyPushRequestWithoutServiceAccount(t *testing.T) {
	t.Parallel()
	s := marketplacetest.New(t)
	v, err := marketplace.NewPushVerifier(pushTestAudience, marketplace.WithAnyPushServiceAccount(),
		marketplace.WithPushJWKSURL(s.PushJWKSURL()), marketplace.WithPushClock(s.Clock().Now))
	require.NoError(t, err)
	// With WithAnyPushServiceAccount any Google-signed token for the
	// audience passes, whatever its email.
	tok := s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Bad: marketplacetest.BadTokenWrongEmail})
	c, err := v.VerifyPushRequest(context.Background(), pushBearerRequest(t, tok))
	require.NoError(t, err)
	assert.NotEqual(t, s.PushServiceAccount(), c.Email)
}

func TestVerifyPushRequestKeyRotationAndOutage(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	ctx := context.Background()
	_, err := e.v.VerifyPushRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	require.NoError(t, err)

	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotatePushKey())
	_, err = e.v.VerifyPushRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	require.NoError(t, err)
	e.requireOnlyJWKSFetched(t, 2)

	// The endpoint goes down just as the next rotation happens.
	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotatePushKey())
	e.log.setDown(true)
	_, err = e.v.VerifyPushRequest(ctx, pushBearerRequest(t, e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})))
	requireAuthReason(t, err, marketplace.ErrKeysUnavailable)
}

func TestNewPushVerifierRefusesBadConfig(t *testing.T) {
	t.Parallel()
	_, err := marketplace.NewPushVerifier("")
	assert.Error(t, err)
	_, err = marketplace.NewPushVerifier("a", marketplace.WithPushJWKSURL("http://keys.example.com/"))
	assert.Error(t, err)
	_, err = marketplace.NewPushVerifier("a", marketplace.WithPushServiceAccount("not-an-email"))
	assert.Error(t, err)
	_, err = marketplace.NewPushVerifier("a", marketplace.WithPushServiceAccount("sa@p.iam.gserviceaccount.com"), marketplace.WithPushLeeway(time.Hour))
	assert.Error(t, err)
	// The audience alone proves nothing: a service account, or the
	// explicit choice of any, is required.
	_, err = marketplace.NewPushVerifier("a")
	assert.ErrorContains(t, err, "no service account")
	_, err = marketplace.NewPushVerifier("a", marketplace.WithPushServiceAccount(""))
	assert.ErrorContains(t, err, "no service account")
	v, err := marketplace.NewPushVerifier("a", marketplace.WithPushServiceAccount("sa@p.iam.gserviceaccount.com"))
	require.NoError(t, err)
	assert.NotNil(t, v)
	v, err = marketplace.NewPushVerifier("a", marketplace.WithAnyPushServiceAccount())
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
		verified []marketplace.PushClaims
		bodies   []string
	)
	var v *marketplace.PushVerifier
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.VerifyPushRequest(r.Context(), r)
		if err != nil {
			code := http.StatusUnauthorized
			var te *marketplace.TokenError
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
	v, err = marketplace.NewPushVerifier(endpoint.URL,
		marketplace.WithPushJWKSURL(s.PushJWKSURL()),
		marketplace.WithPushClock(s.Clock().Now),
		marketplace.WithPushServiceAccount(s.PushServiceAccount()))
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
