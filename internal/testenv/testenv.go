// Package testenv is the set-up the SDK's own tests share, written once:
// the offline emulator with a Procurement client on it whose retries take
// milliseconds, a recorder that stands in for the client's sleeping between
// retries, and the loop that feeds what the emulator published to a
// processor's HandleMessage, as Pub/Sub would.
//
// It is for tests only (it takes a testing.TB and fails the test on any
// error); being internal, it adds nothing to the public API. Tests of
// package procurement or marketplace that use it must be external test
// packages (procurement_test, marketplace_test): it imports both.
package testenv

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testhook"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Retry is the retry policy of the tests' Procurement clients: the default
// number of attempts, a few milliseconds apart.
func Retry() procurement.RetryPolicy {
	return procurement.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

// Env is an emulator and a Procurement client of it.
type Env struct {
	Server *marketplacetest.Server
	Client *procurement.Client
}

// New starts an emulator with opts (stopped when the test ends) and a
// Procurement client of it with Retry.
func New(tb testing.TB, opts ...marketplacetest.Option) *Env {
	tb.Helper()
	srv := marketplacetest.New(tb, opts...)
	return &Env{Server: srv, Client: Client(tb, srv, nil)}
}

// Client returns a Procurement client of srv. A nil cfg means
// &procurement.Config{Retry: Retry()}; any other is used as given. opts
// come after the emulator's client options, so that option.WithHTTPClient
// replaces its HTTP client.
func Client(tb testing.TB, srv *marketplacetest.Server, cfg *procurement.Config, opts ...option.ClientOption) *procurement.Client {
	tb.Helper()
	all := append(srv.ClientOptions(), opts...)
	return newClient(tb, srv.ProviderID(), cfg, all)
}

// ClientAt is Client for an emulator known only by its provider id and URL
// (Server.URL), such as one running in another process. rt, if not nil, is
// the client's HTTP transport.
func ClientAt(tb testing.TB, providerID, url string, rt http.RoundTripper, cfg *procurement.Config) *procurement.Client {
	tb.Helper()
	// The emulator wants a bearer token, as Google does.
	opts := []option.ClientOption{option.WithEndpoint(url + "/"),
		option.WithHTTPClient(&http.Client{Transport: marketplacetest.AuthTransport(rt)})}
	return newClient(tb, providerID, cfg, opts)
}

func newClient(tb testing.TB, providerID string, cfg *procurement.Config, opts []option.ClientOption) *procurement.Client {
	tb.Helper()
	if cfg == nil {
		cfg = &procurement.Config{Retry: Retry()}
	}
	client, err := procurement.NewClientWithConfig(context.Background(), providerID, cfg, opts...)
	if err != nil {
		tb.Fatalf("testenv: procurement client: %v", err)
	}
	return client
}

// SetSleep replaces the function client waits with between retries; it
// must return ctx.Err() if ctx ends first. Call it before the client is
// used.
func SetSleep(client *procurement.Client, sleep func(ctx context.Context, d time.Duration) error) {
	testhook.SetProcurementSleep(client, sleep)
}

// SleepRecorder stands in for a client's sleeping between retries (see
// SetSleep): it records each delay asked for and advances a fake clock
// (Now, for the client's Config.Clock) by it instead. It is safe for
// concurrent use.
type SleepRecorder struct {
	mu     sync.Mutex
	now    time.Time
	delays []time.Duration
}

// NewSleepRecorder returns a SleepRecorder whose clock reads start.
func NewSleepRecorder(start time.Time) *SleepRecorder { return &SleepRecorder{now: start} }

// Sleep records d and advances the clock by it, at once; it fails only if
// ctx has ended.
func (s *SleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, d)
	s.now = s.now.Add(d)
	return nil
}

// Now reads the clock.
func (s *SleepRecorder) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Delays returns the delays recorded so far, in order.
func (s *SleepRecorder) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}
