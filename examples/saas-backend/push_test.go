package main

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// -transport=push needs the push subscription's audience and service
// account instead of a project and subscription, and, with an external
// emulator, where its push-token keys are.
func TestStartupNamesWhatIsMissingForPush(t *testing.T) {
	t.Parallel()
	err := serve(context.Background(), []string{"-transport", "push"}, noEnv, io.Discard, nil)
	require.Error(t, err)
	for _, want := range []string{envSessionKey, envProvider, envPushAudience, envPushAccount, envService,
		"projects/cloudcommerceproc-prod/topics/<partner id>", "Producer Portal", pushPath} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), envSubscription)

	env := map[string]string{envTransport: "push", envProvider: "acme", envPushAudience: "https://x/pubsub/push",
		envPushAccount: "sa@p.iam.gserviceaccount.com", envService: "svc", envSessionKey: testSessionKey,
		envProcEndpoint: "http://127.0.0.1:1/", envSCEndpoint: "http://127.0.0.1:1/", envSignupCertsURL: "http://127.0.0.1:1/certs"}
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, envPushJWKSURL)
	assert.NotContains(t, err.Error(), "missing configuration")

	env[envTransport] = "carrier-pigeon"
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, "must be pull or push")
}

// Push deliveries without a genuine token for this endpoint are refused
// before their body is read; a genuine one is processed and acknowledged.
func TestPushAuthentication(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t, "-transport=push")
	push := b.url + pushPath
	data := []byte(`{"eventId":"e-1","eventType":"ENTITLEMENT_RENEWED","entitlement":{"id":"no-such-entitlement"}}`)
	for _, kind := range []marketplacetest.BadToken{marketplacetest.BadTokenWrongAudience, marketplacetest.BadTokenWrongEmail,
		marketplacetest.BadTokenExpired, marketplacetest.BadTokenForeignKey} {
		tok := b.emu.PushToken(marketplacetest.TokenParams{Audience: push, Bad: kind})
		resp, err := b.emu.Push(context.Background(), push, marketplacetest.PushParams{Data: data, Token: tok})
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, kind)
	}
	resp, err := b.emu.Push(context.Background(), push, marketplacetest.PushParams{Data: data, NoToken: true})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")

	resp, err = b.emu.Push(context.Background(), push, marketplacetest.PushParams{Audience: push, Data: []byte("not json")})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Less(t, resp.StatusCode, 300, "a genuine delivery of an undecodable message is acknowledged (poison), not retried forever")
	status, body := get(t, b.url+"/ops/api/v1/poison", "Authorization", "Bearer ops-secret")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"messageId"`)
}

// POST /ops/usage/flush reports closed usage windows now, for Cloud
// Scheduler when the backend runs with push on Cloud Run.
func TestOpsFlush(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t, "-transport=push")
	status, _ := postForm(t, b.url+"/ops/usage/flush", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := postForm(t, b.url+"/ops/usage/flush", nil, "Authorization", "Bearer ops-secret")
	assert.Equal(t, http.StatusOK, status, body)
}
