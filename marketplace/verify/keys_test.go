package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RSA key generation is slow under -race: each test binary makes two keys.
var (
	keyTestRSA1 = sync.OnceValue(func() *rsa.PrivateKey { return keyTestRSAKey(2048) })
	keyTestRSA2 = sync.OnceValue(func() *rsa.PrivateKey { return keyTestRSAKey(2048) })
)

func keyTestRSAKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func keyTestCertPEM(t *testing.T, pub, priv any) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<33, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func keyTestJWK(kid string, k *rsa.PublicKey) jsonWebKey {
	return jsonWebKey{
		Kty: "RSA", Alg: "RS256", Use: "sig", Kid: kid,
		N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}
}

// keyTestClock is a clock tests move by hand.
type keyTestClock struct {
	mu  sync.Mutex
	now time.Time
}

func newKeyTestClock() *keyTestClock {
	return &keyTestClock{now: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
}

func (c *keyTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *keyTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// keyServer serves a key set whose content and status tests change, and
// counts requests.
type keyServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	status int
	body   []byte
	cache  string        // Cache-Control
	gate   chan struct{} // if non-nil, requests wait for it to close
}

func newKeyServer(t *testing.T, body any) *keyServer {
	t.Helper()
	ks := &keyServer{status: http.StatusOK, cache: "public, max-age=3600"}
	ks.set(t, body)
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.requests.Add(1)
		ks.mu.Lock()
		status, b, cc, gate := ks.status, ks.body, ks.cache, ks.gate
		ks.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Cache-Control", cc)
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(t *testing.T, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body = b
}

func (ks *keyServer) setStatus(code int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.status = code
}

func (ks *keyServer) setCacheControl(cc string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.cache = cc
}

func (ks *keyServer) setGate(g chan struct{}) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.gate = g
}

func newTestCache(ks *keyServer, format keySetFormat, clock *keyTestClock) *keyCache {
	return newKeyCache("test", ks.URL, format, ks.Client(), clock.Now, keyTestLogger())
}

func requireTokenReason(t *testing.T, err error, want TokenReason) {
	t.Helper()
	require.Error(t, err)
	var te *TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, want, te.Reason, "error: %v", err)
	assert.ErrorIs(t, err, want)
}

func TestParseKeySet(t *testing.T) {
	t.Parallel()
	k1 := keyTestRSA1()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	weak := keyTestRSAKey(1024)

	t.Run("x509 map", func(t *testing.T) {
		t.Parallel()
		body, _ := json.Marshal(map[string]string{
			"good": keyTestCertPEM(t, &k1.PublicKey, k1),
			"ec":   keyTestCertPEM(t, &ec.PublicKey, ec),
			"weak": keyTestCertPEM(t, &weak.PublicKey, weak),
			"junk": "not a certificate",
		})
		keys, skipped, err := parseKeySet(formatX509, body)
		require.NoError(t, err)
		require.Len(t, keys, 1)
		assert.True(t, keys["good"].Equal(&k1.PublicKey))
		assert.Len(t, skipped, 3)
	})
	t.Run("JWKS", func(t *testing.T) {
		t.Parallel()
		good := keyTestJWK("good", &k1.PublicKey)
		padded := keyTestJWK("padded", &k1.PublicKey)
		padded.N += "=="[:(4-len(padded.N)%4)%4]
		noAlg := keyTestJWK("no-alg", &k1.PublicKey)
		noAlg.Alg, noAlg.Use = "", ""
		ecKey := keyTestJWK("ec", &k1.PublicKey)
		ecKey.Kty = "EC"
		hs := keyTestJWK("hs", &k1.PublicKey)
		hs.Alg = "HS256"
		enc := keyTestJWK("enc", &k1.PublicKey)
		enc.Use = "enc"
		weakKey := keyTestJWK("weak", &weak.PublicKey)
		noKid := keyTestJWK("", &k1.PublicKey)
		badE := keyTestJWK("even-e", &k1.PublicKey)
		badE.E = base64.RawURLEncoding.EncodeToString([]byte{2})
		body, _ := json.Marshal(map[string]any{"keys": []jsonWebKey{good, padded, noAlg, ecKey, hs, enc, weakKey, noKid, badE}})
		keys, skipped, err := parseKeySet(formatJWKS, body)
		require.NoError(t, err)
		assert.Len(t, keys, 3)
		for _, kid := range []string{"good", "padded", "no-alg"} {
			require.Contains(t, keys, kid)
			assert.True(t, keys[kid].Equal(&k1.PublicKey), kid)
		}
		assert.Len(t, skipped, 6)
	})
	t.Run("no usable key", func(t *testing.T) {
		t.Parallel()
		_, _, err := parseKeySet(formatX509, []byte(`{"a":"b"}`))
		assert.ErrorContains(t, err, "no usable RSA key")
		_, _, err = parseKeySet(formatJWKS, []byte(`{"keys":[]}`))
		assert.ErrorContains(t, err, "no usable RSA key")
		_, _, err = parseKeySet(formatJWKS, []byte(`[1,2]`))
		assert.Error(t, err)
	})
}

func TestKeyCacheCachesPerMaxAge(t *testing.T) {
	t.Parallel()
	k1 := keyTestRSA1()
	ks := newKeyServer(t, map[string]string{"k1": keyTestCertPEM(t, &k1.PublicKey, k1)})
	ks.setCacheControl("public, max-age=120")
	clock := newKeyTestClock()
	c := newTestCache(ks, formatX509, clock)
	ctx := context.Background()

	for range 5 {
		k, err := c.key(ctx, "k1")
		require.NoError(t, err)
		assert.True(t, k.Equal(&k1.PublicKey))
	}
	assert.EqualValues(t, 1, ks.requests.Load())

	clock.Advance(119 * time.Second)
	_, err := c.key(ctx, "k1")
	require.NoError(t, err)
	assert.EqualValues(t, 1, ks.requests.Load(), "still fresh")

	clock.Advance(2 * time.Second)
	_, err = c.key(ctx, "k1")
	require.NoError(t, err)
	assert.EqualValues(t, 2, ks.requests.Load(), "expired: refetched")
}

func TestKeyCacheUnknownKidRefreshIsRateLimited(t *testing.T) {
	t.Parallel()
	k1, k2 := keyTestRSA1(), keyTestRSA2()
	ks := newKeyServer(t, map[string]any{"keys": []jsonWebKey{keyTestJWK("k1", &k1.PublicKey)}})
	clock := newKeyTestClock()
	c := newTestCache(ks, formatJWKS, clock)
	ctx := context.Background()

	_, err := c.key(ctx, "k1")
	require.NoError(t, err)
	require.EqualValues(t, 1, ks.requests.Load())

	// A flood of made-up kids within the interval causes no request.
	for i := range 100 {
		_, err := c.key(ctx, "made-up-"+string(rune('a'+i%26)))
		requireTokenReason(t, err, ErrTokenUnknownKey)
	}
	assert.EqualValues(t, 1, ks.requests.Load())

	// Google rotates: k2 appears. Within the interval it is not seen yet...
	ks.set(t, map[string]any{"keys": []jsonWebKey{keyTestJWK("k2", &k2.PublicKey), keyTestJWK("k1", &k1.PublicKey)}})
	clock.Advance(keyRefreshInterval - time.Second)
	_, err = c.key(ctx, "k2")
	requireTokenReason(t, err, ErrTokenUnknownKey)
	assert.EqualValues(t, 1, ks.requests.Load())

	// ...and after it, one refresh finds it.
	clock.Advance(time.Second)
	k, err := c.key(ctx, "k2")
	require.NoError(t, err)
	assert.True(t, k.Equal(&k2.PublicKey))
	assert.EqualValues(t, 2, ks.requests.Load())

	// More made-up kids: at most one request per interval.
	for range 3 {
		clock.Advance(10 * time.Second)
		for range 20 {
			_, err := c.key(ctx, "still-made-up")
			requireTokenReason(t, err, ErrTokenUnknownKey)
		}
	}
	assert.EqualValues(t, 3, ks.requests.Load(), "30 s after the k2 refresh, one more")

	// A key Google stops serving stops verifying after the next refresh.
	ks.set(t, map[string]any{"keys": []jsonWebKey{keyTestJWK("k2", &k2.PublicKey)}})
	clock.Advance(keyRefreshInterval)
	_, err = c.key(ctx, "made-up-again") // triggers the refresh
	requireTokenReason(t, err, ErrTokenUnknownKey)
	_, err = c.key(ctx, "k1")
	requireTokenReason(t, err, ErrTokenUnknownKey)
}

func TestKeyCacheConcurrentMissesShareOneFetch(t *testing.T) {
	t.Parallel()
	k1 := keyTestRSA1()
	ks := newKeyServer(t, map[string]string{"k1": keyTestCertPEM(t, &k1.PublicKey, k1)})
	gate := make(chan struct{})
	ks.setGate(gate)
	c := newTestCache(ks, formatX509, newKeyTestClock())

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			kid := "k1"
			if i%2 == 1 {
				kid = "unknown"
			}
			_, err := c.key(context.Background(), kid)
			if kid == "k1" {
				errs <- err
			}
		})
	}
	require.Eventually(t, func() bool { return ks.requests.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.EqualValues(t, 1, ks.requests.Load())
}

func TestKeyCacheEndpointDown(t *testing.T) {
	t.Parallel()
	k1 := keyTestRSA1()
	ks := newKeyServer(t, map[string]string{"k1": keyTestCertPEM(t, &k1.PublicKey, k1)})
	ks.setStatus(http.StatusServiceUnavailable)
	clock := newKeyTestClock()
	c := newTestCache(ks, formatX509, clock)
	ctx := context.Background()

	_, err := c.key(ctx, "k1")
	requireTokenReason(t, err, ErrKeysUnavailable)
	var te *TokenError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.Retryable())
	assert.ErrorContains(t, err, "503")

	// Failures count against the rate limit: a down endpoint is not hammered.
	for range 10 {
		_, err = c.key(ctx, "k1")
		requireTokenReason(t, err, ErrKeysUnavailable)
	}
	assert.EqualValues(t, 1, ks.requests.Load())

	ks.setStatus(http.StatusOK)
	clock.Advance(keyRefreshInterval)
	_, err = c.key(ctx, "k1")
	require.NoError(t, err)
	assert.EqualValues(t, 2, ks.requests.Load())

	// Once the cache expires, a failed refresh does not fall back to the
	// stale keys.
	ks.setStatus(http.StatusInternalServerError)
	clock.Advance(time.Hour)
	_, err = c.key(ctx, "k1")
	requireTokenReason(t, err, ErrKeysUnavailable)

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		c := newKeyCache("test", dead.URL, formatX509, http.DefaultClient, newKeyTestClock().Now, keyTestLogger())
		_, err := c.key(context.Background(), "k1")
		requireTokenReason(t, err, ErrKeysUnavailable)
	})
	t.Run("body too large", func(t *testing.T) {
		t.Parallel()
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"k":"`))
			_, _ = w.Write([]byte(strings.Repeat("A", maxKeySetBytes)))
		}))
		t.Cleanup(big.Close)
		c := newKeyCache("test", big.URL, formatX509, big.Client(), newKeyTestClock().Now, keyTestLogger())
		_, err := c.key(context.Background(), "k1")
		requireTokenReason(t, err, ErrKeysUnavailable)
		assert.ErrorContains(t, err, "larger than")
	})
}

// A caller that gives up (a client that sends a made-up kid and hangs up)
// neither aborts the fetch it started nor resets the rate limit: the fetch
// completes for the callers after it, and a flood of such callers costs
// one fetch per interval.
func TestKeyCacheCallerCancelKeepsFetchAndRateLimit(t *testing.T) {
	t.Parallel()
	k1 := keyTestRSA1()
	ks := newKeyServer(t, map[string]string{"k1": keyTestCertPEM(t, &k1.PublicKey, k1)})
	gate := make(chan struct{})
	ks.setGate(gate)
	c := newTestCache(ks, formatX509, newKeyTestClock())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.key(ctx, "made-up")
		done <- err
	}()
	require.Eventually(t, func() bool { return ks.requests.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err := <-done
	requireTokenReason(t, err, ErrKeysUnavailable)
	assert.ErrorIs(t, err, context.Canceled)

	ks.setGate(nil)
	close(gate)
	_, err = c.key(context.Background(), "k1")
	require.NoError(t, err, "the fetch the first caller started completes for the next")
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = c.key(ctx, "made-up")
		_, err = c.key(context.Background(), "made-up")
		requireTokenReason(t, err, ErrTokenUnknownKey)
	}
	assert.EqualValues(t, 1, ks.requests.Load(), "one fetch in the interval, whoever hung up")
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cacheControl, age string
		want              time.Duration
	}{
		{"public, max-age=19800, must-revalidate, no-transform", "", 19800 * time.Second},
		{"max-age=3600", "600", 3000 * time.Second},
		{"max-age=3600", "7200", keyMinTTL},
		{"MAX-AGE=\"300\"", "", 300 * time.Second},
		{"max-age=5", "", keyMinTTL},
		{"max-age=99999999999", "", keyMaxTTL},
		{"max-age=-1", "", keyDefaultTTL},
		{"max-age=abc", "", keyDefaultTTL},
		{"no-cache", "", keyMinTTL},
		{"public, no-store, max-age=3600", "", keyMinTTL},
		{"", "", keyDefaultTTL},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.cacheControl != "" {
			h.Set("Cache-Control", tc.cacheControl)
		}
		if tc.age != "" {
			h.Set("Age", tc.age)
		}
		assert.Equal(t, tc.want, cacheTTL(h), "Cache-Control %q Age %q", tc.cacheControl, tc.age)
	}
}

func TestCheckKeyURL(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{SignupIssuer, DefaultPushJWKSURL, "http://127.0.0.1:1234/certs", "http://localhost/x", "http://[::1]:80/x"} {
		assert.NoError(t, checkKeyURL(ok), ok)
	}
	for _, bad := range []string{"http://www.googleapis.com/oauth2/v3/certs", "http://10.0.0.1/certs", "ftp://x/y", "https://", "/relative", "::"} {
		assert.Error(t, checkKeyURL(bad), bad)
	}
}

func TestTokenErrorMessageAndMatching(t *testing.T) {
	t.Parallel()
	cause := errors.New("detail")
	err := error(&TokenError{Reason: ErrTokenExpired, Err: cause, Kind: "sign-up"})
	assert.Equal(t, "verify: sign-up token refused: token expired: detail", err.Error())
	assert.ErrorIs(t, err, ErrTokenExpired)
	assert.ErrorIs(t, err, cause)
	assert.NotErrorIs(t, err, ErrTokenSignature)
	assert.False(t, err.(*TokenError).Retryable())
	assert.Equal(t, "verify: JWT token refused: token missing", (&TokenError{Reason: ErrTokenMissing}).Error())
}

func keyTestLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type panickingTransport struct{}

func (panickingTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

// The fetch runs in a goroutine of its own: a panic in a custom client's
// transport is the fetch's error, not a crash, and its waiters are released.
func TestKeyCacheFetchPanicIsAnError(t *testing.T) {
	t.Parallel()
	c := newKeyCache("test", "http://127.0.0.1:1/certs", formatX509, &http.Client{Transport: panickingTransport{}},
		newKeyTestClock().Now, keyTestLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.key(ctx, "k1")
	requireTokenReason(t, err, ErrKeysUnavailable)
	assert.ErrorContains(t, err, "transport bug")
}
