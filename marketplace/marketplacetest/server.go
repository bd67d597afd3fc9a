// Package marketplacetest is an offline Google Cloud Marketplace for tests:
// a real HTTP server that speaks the Partner Procurement API
// (cloudcommerceprocurement/v1) and Service Control (servicecontrol/v1), a
// pstest Pub/Sub server carrying the Marketplace notification topic, and the
// keys that sign sign-up and push tokens.
//
// It plays Google and the customer. The real generated clients talk to it
// through option.WithEndpoint, so the code under test is the code that runs
// in production. It imports no package of this SDK: it must not share the
// SDK's assumptions.
//
// Where Google's documentation is silent the emulator follows the API
// reference; the choices it makes there are listed in "Fidelity" below.
package marketplacetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"
)

// Server is a running emulator. Create one with New (tests) or NewServer
// (programs); all its methods are safe for concurrent use.
type Server struct {
	cfg   config
	clock *Clock
	http  *httptest.Server
	mux   *http.ServeMux

	// mu guards all emulated Google state (procurement, service control).
	mu sync.Mutex

	// Wiring owned by tokens.go and push.go: they manage their own locking.
	signup *signupIssuer
	push   *pushIssuer

	closeOnce sync.Once
	closeErr  error
}

// Option configures a Server.
type Option func(*config)

type config struct {
	providerID string
	start      time.Time
}

func defaultConfig() config {
	return config{
		providerID: "acme-provider",
		start:      time.Date(2026, time.January, 5, 9, 0, 0, 0, time.UTC),
	}
}

// WithProviderID sets the partner (provider) id; default "acme-provider".
func WithProviderID(id string) Option { return func(c *config) { c.providerID = id } }

// WithStartTime sets the emulator clock's initial time.
func WithStartTime(t time.Time) Option { return func(c *config) { c.start = t } }

// New starts a Server for a test and closes it when the test ends.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		tb.Fatalf("marketplacetest: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// NewServer starts a Server on loopback ports. Call Close when done.
func NewServer(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{cfg: cfg, clock: NewClock(cfg.start), mux: http.NewServeMux()}
	var err error
	if s.signup, err = newSignupIssuer(s.clock.Now); err != nil {
		return nil, fmt.Errorf("signup keys: %w", err)
	}
	if s.push, err = newPushIssuer(s.clock.Now); err != nil {
		return nil, fmt.Errorf("push keys: %w", err)
	}
	s.signup.routes(s.mux)
	s.push.routes(s.mux)
	s.http = httptest.NewServer(s.mux)
	s.signup.baseURL = s.http.URL
	s.push.baseURL = s.http.URL
	return s, nil
}

// Close stops every listener. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.http.Close()
		s.closeErr = nil
	})
	return s.closeErr
}

// URL is the base URL of the HTTP server ("http://127.0.0.1:port"), which
// serves Procurement, Service Control, the key endpoints and the control API.
func (s *Server) URL() string { return s.http.URL }

// ProviderID is the partner id the emulator serves.
func (s *Server) ProviderID() string { return s.cfg.providerID }

// Clock is the emulator's controllable clock.
func (s *Server) Clock() *Clock { return s.clock }

// ClientOptions are the options that point a generated google.golang.org/api
// client (cloudcommerceprocurement/v1 or servicecontrol/v1) at the emulator.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.http.URL + "/"),
		option.WithoutAuthentication(),
		option.WithHTTPClient(s.http.Client()),
	}
}

// Clock is a manual clock: it moves only when told to. Emulated state and
// tokens read it, and tests hand its Now to the code under test so both
// agree on the time without sleeping.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (negative d is refused).
func (c *Clock) Advance(d time.Duration) time.Time {
	if d < 0 {
		panic("marketplacetest: Clock.Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t; t must not be before the current time.
func (c *Clock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		return errors.New("marketplacetest: clock cannot go backwards")
	}
	c.now = t
	return nil
}

var _ = context.Background
