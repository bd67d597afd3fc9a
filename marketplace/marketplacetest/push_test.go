package marketplacetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPushTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "https://saas.example.com/marketplace/push"
	verifier := strictVerifier{
		issuer: PushIssuer, audience: aud, keys: jwksKeys(s.PushJWKSURL()),
		now: s.Clock().Now, email: s.PushServiceAccount(),
	}

	t.Run("genuine token verifies against the JWKS", func(t *testing.T) {
		tok := s.PushToken(TokenParams{Audience: aud})
		claims, err := verifier.verify(t, tok)
		require.NoError(t, err)
		now := s.Clock().Now().Unix()
		assert.Equal(t, PushIssuer, claims["iss"])
		assert.Equal(t, aud, claims["aud"])
		assert.Equal(t, DefaultPushServiceAccount, claims["email"])
		assert.Equal(t, true, claims["email_verified"])
		assert.Len(t, claims["sub"], 21)
		assert.Equal(t, claims["sub"], claims["azp"])
		assert.EqualValues(t, now, claims["iat"])
		assert.EqualValues(t, now+3600, claims["exp"])
		header := decodeSegment(t, tok, 0)
		assert.Equal(t, "RS256", header["alg"])
		assert.NotEmpty(t, header["kid"])
	})

	t.Run("explicit claims", func(t *testing.T) {
		f := false
		tok := s.PushToken(TokenParams{Audience: aud, Email: "x@y", EmailVerified: &f, Subject: "42"})
		claims := decodeSegment(t, tok, 1)
		assert.Equal(t, "x@y", claims["email"])
		assert.Equal(t, false, claims["email_verified"])
		assert.Equal(t, "42", claims["sub"])
	})

	t.Run("sign-up-only fields panic", func(t *testing.T) {
		require.PanicsWithError(t, "marketplacetest: Google applies to sign-up tokens only", func() {
			s.PushToken(TokenParams{Audience: aud, Google: map[string]any{}})
		})
	})

	t.Run("rotation keeps the previous key", func(t *testing.T) {
		old := s.PushToken(TokenParams{Audience: aud})
		require.NoError(t, s.RotatePushKey())
		fresh := s.PushToken(TokenParams{Audience: aud})
		assert.NotEqual(t, decodeSegment(t, old, 0)["kid"], decodeSegment(t, fresh, 0)["kid"])
		for _, tok := range []string{old, fresh} {
			_, err := verifier.verify(t, tok)
			require.NoError(t, err)
		}
	})
}

func TestPushAttackTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "https://saas.example.com/marketplace/push"
	verifier := strictVerifier{
		issuer: PushIssuer, audience: aud, keys: jwksKeys(s.PushJWKSURL()),
		now: s.Clock().Now, email: s.PushServiceAccount(),
	}
	wantReason := map[BadToken]error{
		BadTokenAlgNone:          errAlg,
		BadTokenHS256PublicKey:   errAlg,
		BadTokenWrongIssuer:      errIssuer,
		BadTokenWrongAudience:    errAudience,
		BadTokenExpired:          errExpired,
		BadTokenIssuedInFuture:   errIssuedInFuture,
		BadTokenEmptySubject:     errSubject,
		BadTokenUnknownKeyID:     errUnknownKid,
		BadTokenForeignKey:       errSignature,
		BadTokenTamperedPayload:  errSignature,
		BadTokenTruncated:        errSignature,
		BadTokenOversize:         errTooLarge,
		BadTokenWrongEmail:       errEmail,
		BadTokenEmailNotVerified: errEmailVerified,
		BadTokenCritHeader:       errMalformed,
		BadTokenSignatureNewline: errMalformed,
		BadTokenSignatureLowBits: errMalformed,
		BadTokenLongLifetime:     errLifetime,
		BadTokenStringExpiry:     errMalformed,
		BadTokenSubjectPath:      errSubject,
		BadTokenUnicodeEmail:     errEmail,
	}
	require.Len(t, PushAttackTokens(), len(wantReason))
	for _, kind := range PushAttackTokens() {
		t.Run("bad/"+string(kind), func(t *testing.T) {
			tok := s.PushToken(TokenParams{Audience: aud, Bad: kind})
			_, err := verifier.verify(t, tok)
			require.ErrorIs(t, err, wantReason[kind])
		})
	}
	t.Run("attacker issuer does not apply to push", func(t *testing.T) {
		require.PanicsWithError(t, `marketplacetest: bad token kind "attacker-issuer" does not apply to push tokens`, func() {
			s.PushToken(TokenParams{Audience: aud, Bad: BadTokenAttackerIssuer})
		})
	})
}

type capturedPush struct {
	header http.Header
	body   []byte
}

func pushReceiver(t *testing.T, status int) (*httptest.Server, func() []capturedPush) {
	var (
		mu  sync.Mutex
		got []capturedPush
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, capturedPush{header: r.Header.Clone(), body: body})
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []capturedPush {
		mu.Lock()
		defer mu.Unlock()
		return append([]capturedPush(nil), got...)
	}
}

func TestPushDeliversEnvelope(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "https://saas.example.com/push"
	recv, received := pushReceiver(t, http.StatusNoContent)
	ctx := context.Background()

	data := []byte(`{"eventId":"e-1","eventType":"ENTITLEMENT_ACTIVE"}`)
	resp, err := s.Push(ctx, recv.URL+"/push", PushParams{Audience: aud, Data: data, Attributes: map[string]string{"k": "v"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)

	got := received()
	require.Len(t, got, 1)
	assert.Equal(t, "application/json", got[0].header.Get("Content-Type"))
	assert.Contains(t, got[0].header.Get("User-Agent"), "APIs-Google")
	authz := got[0].header.Get("Authorization")
	require.True(t, strings.HasPrefix(authz, "Bearer "), authz)
	verifier := strictVerifier{
		issuer: PushIssuer, audience: aud, keys: jwksKeys(s.PushJWKSURL()),
		now: s.Clock().Now, email: s.PushServiceAccount(),
	}
	_, err = verifier.verify(t, strings.TrimPrefix(authz, "Bearer "))
	require.NoError(t, err)

	var env struct {
		Message struct {
			Data         string
			MessageID    string `json:"messageId"`
			MessageIDs   string `json:"message_id"`
			PublishTime  string `json:"publishTime"`
			PublishTimeS string `json:"publish_time"`
			Attributes   map[string]string
		}
		Subscription string
	}
	require.NoError(t, json.Unmarshal(got[0].body, &env))
	decoded, err := base64.StdEncoding.DecodeString(env.Message.Data)
	require.NoError(t, err)
	assert.Equal(t, data, decoded)
	assert.NotEmpty(t, env.Message.MessageID)
	assert.Equal(t, env.Message.MessageID, env.Message.MessageIDs)
	pt, err := time.Parse(time.RFC3339Nano, env.Message.PublishTime)
	require.NoError(t, err)
	assert.True(t, pt.Equal(s.Clock().Now()))
	assert.Equal(t, env.Message.PublishTime, env.Message.PublishTimeS)
	assert.Equal(t, map[string]string{"k": "v"}, env.Message.Attributes)
	assert.Equal(t, DefaultPushSubscription, env.Subscription)

	// A second push gets a different message id.
	resp, err = s.Push(ctx, recv.URL, PushParams{Audience: aud, Data: data})
	require.NoError(t, err)
	resp.Body.Close()
	var env2 struct{ Message struct{ MessageID string } }
	require.NoError(t, json.Unmarshal(received()[1].body, &env2))
	assert.NotEqual(t, env.Message.MessageID, env2.Message.MessageID)
}

func TestPushParams(t *testing.T) {
	t.Parallel()
	s := New(t)
	recv, received := pushReceiver(t, http.StatusUnauthorized)
	ctx := context.Background()
	at := time.Date(2026, 2, 1, 12, 0, 0, 123000000, time.UTC)

	resp, err := s.Push(ctx, recv.URL, PushParams{NoToken: true, MessageID: "m-1", PublishTime: at, Subscription: "projects/p/subscriptions/s"})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, err = s.Push(ctx, recv.URL, PushParams{Token: "not-a-jwt"})
	require.NoError(t, err)
	resp.Body.Close()

	got := received()
	require.Len(t, got, 2)
	assert.Empty(t, got[0].header.Get("Authorization"))
	assert.JSONEq(t, `{"message":{"data":"","messageId":"m-1","message_id":"m-1",
		"publishTime":"2026-02-01T12:00:00.123Z","publish_time":"2026-02-01T12:00:00.123Z"},
		"subscription":"projects/p/subscriptions/s"}`, string(got[0].body))
	assert.Equal(t, "Bearer not-a-jwt", got[1].header.Get("Authorization"))

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Push(ctx, recv.URL, PushParams{})
	require.ErrorIs(t, err, context.Canceled)
}
