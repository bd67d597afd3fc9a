package marketplace_test

import (
	"context"
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
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// pushEndpoint serves env.proc's PushHandler and returns its URL, which is
// also the tokens' audience.
func pushEndpoint(t *testing.T, env *procEnv) string {
	t.Helper()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	url := hs.URL + "/pubsub/push"
	v, err := verify.NewPushVerifier(url, &verify.Config{
		Runtime:            gcpmarketplace.Runtime{Clock: env.srv.Clock().Now},
		PushJWKSURL:        env.srv.PushJWKSURL(),
		PushServiceAccount: env.srv.PushServiceAccount(),
	})
	require.NoError(t, err)
	mux.Handle("/pubsub/push", env.proc.PushHandler(v))
	return url
}

// The lifecycle through a push subscription the emulator delivers to,
// with duplicated and reordered deliveries.
func TestPushLifecycle(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t,
		withServer(marketplacetest.WithDuplicateDeliveries(0.3), marketplacetest.WithReorder(4), marketplacetest.WithSeed(5)),
		withProc(marketplace.Config{Policy: lifecyclePolicy}))
	url := pushEndpoint(t, env)
	require.NoError(t, env.srv.CreateSubscription(env.ctx, "projects/vendor-project/subscriptions/push", url))
	want := lifecycleScript(t, env, 8, func() { waitAcked(t, env) })
	require.Equal(t, want, env.rec.counts())
	env.requireInSync()
}

func TestPushHandlerResponses(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	url := pushEndpoint(t, env)
	ctx := env.ctx
	status := func(r *http.Response, err error) int {
		t.Helper()
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, r.Body)
		require.NoError(t, r.Body.Close())
		return r.StatusCode
	}

	acct, err := env.srv.CreateAccount(ctx)
	require.NoError(t, err)
	good := env.srv.Published()[0].Data
	assert.Equal(t, http.StatusUnauthorized, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, NoToken: true})))
	assert.Equal(t, http.StatusUnauthorized, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, Audience: "https://elsewhere.example/push"})))
	bad := env.srv.PushToken(marketplacetest.TokenParams{Audience: url, Bad: marketplacetest.BadTokenTamperedPayload})
	assert.Equal(t, http.StatusUnauthorized, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, Token: bad})))
	_, ok := env.localAccount(acct)
	assert.False(t, ok, "nothing processed without a valid token")

	post := func(body string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+env.srv.PushToken(marketplacetest.TokenParams{Audience: url}))
		return status(http.DefaultClient.Do(req))
	}
	assert.Equal(t, http.StatusBadRequest, post(`{"message":`))
	assert.Equal(t, http.StatusBadRequest, post(`{"subscription":"s"}`))
	assert.Equal(t, http.StatusBadRequest, post(`{"message":{"data":"%%%"}}`))
	assert.Equal(t, http.StatusBadRequest, post(`{"message":{"data":"","publishTime":"yesterday"}}`))
	assert.Equal(t, http.StatusBadRequest, post(`{"message":{"data":"`+strings.Repeat("A", 2<<20)+`"}}`), "body limit")

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, status(http.DefaultClient.Do(req)))

	// Undecodable data in a valid envelope: poison, acknowledged.
	assert.Equal(t, http.StatusNoContent, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: []byte("garbage"), Audience: url})))
	require.Len(t, env.poison(), 1)

	// A failing callback: 503 (nack), then success.
	env.rec.setFail(func(context.Context, *marketplace.Change) error { return errors.New("later") })
	assert.Equal(t, http.StatusServiceUnavailable, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, Audience: url})))
	env.rec.setFail(nil)
	assert.Equal(t, http.StatusNoContent, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, Audience: url})))
	assert.Equal(t, http.StatusNoContent, status(env.srv.Push(ctx, url, marketplacetest.PushParams{Data: good, Audience: url})), "duplicate")
	assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(acct))
}

func TestPushHandlerNilVerifierPanics(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	assert.Panics(t, func() { env.proc.PushHandler(nil) })
}

// PushHandler is bounded by Config.Concurrency, as Run is by its flow
// control: the pool check in New (ConnPool) relies on it.
func TestPushHandlerBoundedByConcurrency(t *testing.T) {
	t.Parallel()
	const limit, requests = 2, 5
	env := newProcEnv(t, withProc(marketplace.Config{Concurrency: limit}))
	url := pushEndpoint(t, env)
	ctx := env.ctx

	var (
		mu            sync.Mutex
		inFlight, top int
	)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the push endpoint closes, even on failure
	env.rec.setFail(func(context.Context, *marketplace.Change) error {
		mu.Lock()
		inFlight++
		top = max(top, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	})
	var accounts []string
	for range requests {
		acct, err := env.srv.CreateAccount(ctx)
		require.NoError(t, err)
		accounts = append(accounts, acct)
	}
	codes := make(chan int, requests)
	for _, p := range env.srv.Published() {
		go func() {
			r, err := env.srv.Push(ctx, url, marketplacetest.PushParams{Data: p.Data, Audience: url})
			if err != nil {
				codes <- 0
				return
			}
			_ = r.Body.Close()
			codes <- r.StatusCode
		}()
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == limit },
		5*time.Second, time.Millisecond)

	// A message that cannot get room before its context ends is left
	// unprocessed, for Pub/Sub to redeliver.
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := env.proc.HandleMessage(waitCtx, marketplace.Message{ID: "late", Data: env.srv.Published()[0].Data})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	unblock()
	for range requests {
		assert.Equal(t, http.StatusNoContent, <-codes)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, limit, top, "callbacks running at once")
	for _, acct := range accounts {
		assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(acct))
	}
}
