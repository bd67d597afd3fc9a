// Package marketplacetest is an offline Google Cloud Marketplace for tests:
// a real HTTP server that speaks the Partner Procurement API
// (cloudcommerceprocurement/v1) and Service Control (servicecontrol/v1), a
// pstest Pub/Sub server carrying the Marketplace notification topic, and the
// keys that sign sign-up and push tokens.
//
// It plays Google and the customer. The real generated clients talk to it
// through option.WithEndpoint, so the code under test is the code that runs
// in production. It imports no package of this SDK: it must not share the
// SDK's assumptions, and it serves its own JSON types shaped like Google's
// wire format rather than the generated client's structs.
//
// # Using it
//
//	s := marketplacetest.New(t)
//	svc, _ := cloudcommerceprocurement.NewService(ctx, s.ClientOptions()...)
//	ps, _ := pubsub.NewClient(ctx, "vendor-project", s.PubSubOptions()...)
//	entID, _ := s.Purchase(ctx, marketplacetest.PurchaseParams{}) // publishes ENTITLEMENT_CREATION_REQUESTED
//
// The customer and Google are methods on the Server (CreateAccount, Purchase,
// RequestPlanChange, RequestOfferChange, Cancel, EndTerm, DeleteAccount,
// ...). Every change advances the resource's updateTime and publishes the
// message Google would publish to
// projects/cloudcommerceproc-prod/topics/<providerID>. Inspection methods
// (Entitlements, Reports, Violations, Published, Calls) return
// snapshots taken under the server's lock. InjectFault makes the HTTP APIs
// fail in the ways real networks and Google do.
//
// # Time
//
// The emulator reads its own manual Clock, never the wall clock, for every
// timestamp it serves. Scheduled starts (an approved or auto-approved offer
// with a future newOfferStartTime) take effect deterministically: when the
// Clock is advanced past them (Clock.Advance and Clock.Set run the
// server's scheduler synchronously before returning), and lazily before
// every API call and customer action. Tick does the same on demand.
// Clock.Follow moves the Clock along with the wall clock, for an emulator
// that runs like production (examples/emulator, the examples' -emulator).
// updateTime is strictly increasing per server: a change made while the
// clock has not moved is stamped one microsecond after the previous one.
// Timestamps are written like Google's JSON mapping of
// google.protobuf.Timestamp: UTC, "Z", with 0, 3, 6 or 9 fractional digits.
// pstest itself keeps the wall clock so that ack deadlines expire and
// messages are redelivered as on Pub/Sub.
//
// # Fidelity
//
// Package conformance (marketplace/marketplacetest/conformance) states the
// behaviours the SDK depends on as tests against any endpoint; they run
// against this emulator in CI and, read-only, against Google when a sandbox
// listing is named in GCPMARKETPLACE_CONFORMANCE_* (see that package).
//
// Documented behaviour the emulator follows (Procurement discovery revision
// 20251012, Service Control v1, the Marketplace partner guides):
//
//   - Paths, methods, query parameters and JSON bodies of
//     cloudcommerceprocurement/v1 and servicecontrol/v1 services.check and
//     services.report. Unknown JSON fields in a request body and unknown
//     query parameters are rejected with 400 INVALID_ARGUMENT, as Google's
//     front end does. Fields bind by their JSON name or their proto name
//     (approval_name, page_size), as the proto3 JSON mapping does; a key
//     in another case (APPROVALNAME) is 400 "Unknown name". The standard
//     system parameters (alt, prettyPrint, key, quotaUser, $.xgafv, ...)
//     are accepted and ignored, except fields.
//   - fields (partial response, Google's "Partial response" syntax:
//     "a,b/c,d(e,f)", "*") answers only the selected fields, arrays element
//     by element; a malformed selection is 400 INVALID_ARGUMENT. A name the
//     response lacks selects nothing (undocumented whether Google refuses
//     names outside the schema; the emulator cannot tell them from unset
//     fields).
//   - Procurement and Service Control answer 401 UNAUTHENTICATED
//     (ErrorInfo reason CREDENTIALS_MISSING) to a request without an
//     "Authorization: Bearer" header, as Google's front end does; any
//     non-empty bearer token is accepted (AccessToken, auth.go).
//   - Errors use Google's JSON shape {"error":{"code","message","status",
//     "details"}} so the generated clients return *googleapi.Error; details
//     hold one google.rpc.ErrorInfo (AIP-193). A 403 carries reason
//     IAM_PERMISSION_DENIED in domain iam.googleapis.com with the permission
//     and resource in metadata; a 429 RATE_LIMIT_EXCEEDED in googleapis.com.
//     Other reasons are undocumented for these APIs: the emulator uses the
//     status name (NOT_FOUND, FAILED_PRECONDITION, ...) in the API's domain.
//   - Accounts are created ACCOUNT_ACTIVE with a PENDING "signup"
//     approval. approvalName may be omitted (only one approval exists).
//     Reasons longer than 256 bytes are truncated, as documented.
//   - Approving an entitlement before the account's signup approval is
//     APPROVED fails with 400 FAILED_PRECONDITION "Precondition check
//     failed." (codelab issue #10).
//   - The entitlement state machine: approve only in ACTIVATION_REQUESTED;
//     approvePlanChange / rejectPlanChange only in
//     PENDING_PLAN_CHANGE_APPROVAL with the current newPendingPlan; patch of
//     messageToUser only in ACTIVATION_REQUESTED or
//     PENDING_PLAN_CHANGE_APPROVAL; messageToUser cleared on every state
//     change; newPendingPlan/newPendingOffer only while a change is pending;
//     newOfferStartTime only in ACTIVATION_REQUESTED after approval and in
//     PENDING_PLAN_CHANGE; usageReportingId only for usage-based purchases.
//   - accounts.list pageSize defaults to 25 (max 200); entitlements.list
//     pageSize defaults to 200. Filters follow the entitlements.list
//     reference (attributes, quoting, AND/OR/NOT, ":" for repeated fields),
//     including the product attribute of its examples
//     (product="providerId:productId", NOT (product=foo-product)).
//   - Automatic offer approval replaces ENTITLEMENT_CREATION_REQUESTED and
//     ENTITLEMENT_PLAN_CHANGE_REQUESTED with ENTITLEMENT_OFFER_ACCEPTED.
//   - Message bodies follow the documented shapes: account messages carry
//     no eventType unless WithAccountEventType (ACCOUNT_DELETED always
//     carries it, as in the documented deletion example);
//     ENTITLEMENT_CREATION_REQUESTED carries newPendingOfferDuration (or
//     newOfferDuration/newOfferEndTime for a private offer);
//     ENTITLEMENT_OFFER_ACCEPTED carries newOfferStartTime, newOfferEndTime,
//     newPlan, newProduct, newOffer, orderId and entitlementBenefitIds, as
//     in a real capture;
//     ENTITLEMENT_PLAN_CHANGE_REQUESTED carries newPlan. No attributes,
//     no ordering keys.
//   - Service Control: a request over 1 MB, or one operation carrying the
//     same metric twice with identical labels, invalidates the whole request
//     (400 INVALID_ARGUMENT); int64Value is a JSON string; a value whose
//     type is not its metric's (INT64 DELTA for billing metrics, unless
//     WithMetricType declares DOUBLE), or no value, invalidates the whole
//     request too (metrictypes.go); per-operation
//     failures are reportErrors in a 200 response.
//
// Choices made where Google's documentation is silent (each named
// "undocumented" with the reason it was chosen where it is a guess):
//
//   - Any call in the wrong state (approving twice, approving an approval
//     that is already APPROVED, rejecting a plan change that is not pending,
//     a pendingPlanName that is not the current newPendingPlan) answers 400
//     FAILED_PRECONDITION "Precondition check failed.". Undocumented for an
//     already APPROVED approval: chosen because it is the answer Google is
//     documented to give for the neighbouring case (approving an
//     entitlement before sign-up, codelab issue #10), and because an
//     emulator that accepted a second approve would hide a client that
//     does not re-read state before acting (one that does can tell "already
//     done" from a real failure).
//   - A path naming another provider answers 403 PERMISSION_DENIED (Google
//     checks IAM on the parent before it looks the resource up); an unknown
//     account or entitlement under the right provider answers 404
//     NOT_FOUND.
//   - entitlements.suspend answers 501 UNIMPLEMENTED after the entitlement
//     is looked up (so an unknown one is still 404). The discovery document
//     says only "not yet supported"; undocumented which status Google
//     answers: chosen because UNIMPLEMENTED is google.rpc's code for a
//     method that exists but is not served, and it is not retryable.
//   - patch without updateMask updates the populated fields (AIP-134):
//     messageToUser when set, nothing otherwise (output-only fields in the
//     body are ignored, AIP-203); an updateMask naming anything other than
//     messageToUser (message_to_user) is 400 INVALID_ARGUMENT.
//   - Service Control consumerId may take the forms the discovery
//     document lists for a project: project_number:N, projects/N and
//     project:N name the same consumer (consumers.go); userLabels follow
//     Google Cloud's label rules, else the request is 400
//     INVALID_ARGUMENT (undocumented for this Private Preview field).
//   - A pageSize above 200 is capped at 200 rather than refused, for
//     entitlements.list as for accounts.list: the discovery document states
//     the maximum of 200 for accounts only; undocumented for entitlements,
//     chosen the same so that a client never relies on larger pages.
//   - Page tokens are opaque, bound to the filter they were issued for,
//     and survive inserts and deletes; a malformed or foreign token is 400
//     INVALID_ARGUMENT. Lists are in creation order.
//   - entitlements.reject removes the entitlement (the API reference: "if
//     not approved, it is removed") and publishes ENTITLEMENT_CANCELLED
//     then ENTITLEMENT_DELETED, keeping the documented rule that a deletion
//     always follows a cancellation; a re-fetch then answers 404.
//     Undocumented: when and with which events the removal happens; chosen
//     at once, because a client must cope with the 404 either way and a
//     delayed removal would only hide that path.
//   - accounts.approve publishes nothing (no event is documented for it);
//     accounts.reset sets the signup approval back to PENDING and cancels
//     every live entitlement of the account (ENTITLEMENT_CANCELLED,
//     cancellationReason "unknown").
//   - entitlements.approve with no future start activates at once and
//     publishes ENTITLEMENT_ACTIVE (Google adds "a short delay").
//     approvePlanChange applies the new plan at once and publishes
//     ENTITLEMENT_PLAN_CHANGED, or with SetPlanChangeAtTermEnd(true) moves
//     to PENDING_PLAN_CHANGE, publishes nothing, and applies at EndTerm.
//   - An immediate customer cancellation publishes ENTITLEMENT_CANCELLING
//     then ENTITLEMENT_CANCELLED (CANCELLING is an event, not a state).
//   - eventId is "<eventType>-<uuid>", unique per logical event; a duplicate
//     delivery (WithDuplicateDeliveries) repeats the same eventId.
//   - Service Control: an unknown service name answers 403
//     PERMISSION_DENIED. An unknown consumerId is a check error
//     CONSUMER_INVALID in check and a reportError INVALID_ARGUMENT (code 3)
//     in report; an unknown metric is a reportError INVALID_ARGUMENT. A
//     consumer whose check error is SERVICE_NOT_ACTIVATED, BILLING_DISABLED
//     or PROJECT_DELETED also gets reportError FAILED_PRECONDITION (code 9):
//     the docs say such a customer is not charged.
//   - A consumer's life comes from its entitlement (lifecycle.go): usage
//     is charged only inside [activation, end), where activation is
//     ENTITLEMENT_ACTIVE (or the scheduled start) and end the
//     cancellation, immediate or at term end, by entitlements.reject or by
//     the account's deletion. Outside it, services.check (for its
//     [startTime, endTime), or the instant startTime) answers the check
//     error SERVICE_NOT_ACTIVATED and services.report refuses the
//     operation, even partly outside, with FAILED_PRECONDITION (google-apis.md
//     §4.1: no usage after the end, late usage "must be before the
//     cancellation"). Inferred: the code (undocumented which one Google
//     answers; SERVICE_NOT_ACTIVATED is the code of a service not enabled
//     for the consumer, and Marketplace enables it at activation).
//     Undocumented: usage before the end is accepted however late it
//     arrives (Google asks for reports within an hour, extendable on
//     request); chosen because refusing would only under-bill. A deleted
//     entitlement's consumer stays known for such late reports.
//     Stricter than documented: services.check is judged on its whole
//     [startTime, endTime), so an interval that merely straddles the end
//     fails the check, while Google documents the check error only for a
//     service "disabled before a report's startTime". Chosen because the
//     report of such an interval is refused anyway (the rule above), and a
//     check that passed would let a client send it; a client that checks
//     an interval starting before the end must expect either answer.
//     A cancellation at a term's end ends at offerEndTime even when the
//     state flips to CANCELLED later (EndTerm called after the clock
//     passed it; Google flips it "at the end of the term"), undocumented
//     for a late flip: chosen because usage after the term the customer
//     cancelled must not be charged.
//   - The 1 MB limit of services.check and services.report is measured on
//     the request's protobuf size (wiresize.go: the servicecontrol proto
//     types are not a dependency, so a small size encoder with the proto's
//     field numbers; fields without a public number count one-byte tags,
//     unmodelled messages their JSON length), not on the JSON body, which
//     may be larger (bodies over 8 MB are refused unread).
//   - Operation ids deduplicate: an operation that repeats an accepted
//     one exactly (same operationId and content, as a client resends after
//     a lost response) is billed once and listed by Resends. The Service
//     Control reference recommends UUID version 5 ids precisely so that
//     operations "computed from existing information" can be deduplicated;
//     whether production deduplicates is undocumented. Chosen because a
//     resend with the same id after a lost response is the recovery the
//     reference recommends, and it must not double-bill in tests. The
//     double-billing detector (Violations) flags an operationId reused for different
//     usage, and two operations under different ids whose intervals overlap
//     for the same consumer, metric, metric labels and userLabels; both are
//     accepted and billed, as Google would.
//   - Faults are injected per method in the HTTP middleware, before the
//     handler; FaultLostResponse runs the handler (state changes, events
//     publish) and then answers 503 UNAVAILABLE. Faulted calls count in
//     Calls but not in CheckCalls/ReportCalls.
//   - Push subscriptions (CreateSubscription with an endpoint) are
//     delivered by the emulator, since pstest does not push: token audience
//     = the endpoint URL (Pub/Sub's default), 102/200/201/202/204 ack,
//     anything else nacks and the message comes again after 50 ms.
//   - PublishedEvent.At is the emulator clock; the Pub/Sub publishTime is
//     pstest's wall clock.
//   - Fields only some purchases carry (details.go): every entitlement
//     has one entitlementBenefitIds UUID (undocumented which purchases
//     carry one: chosen always, so code reading it is exercised);
//     quoteExternalName and inputProperties come from PurchaseParams;
//     subscriptionEndTime is the term end once the subscription is known to
//     end (PENDING_CANCELLATION, CANCELLED, a fixed-end private offer;
//     undocumented). Account inputProperties and
//     resellerParentBillingAccount come from SetAccountDetails, the latter
//     answered with view=ACCOUNT_VIEW_FULL only (discovery document).
//   - Filters: OR binds tighter than AND and NOT tightest, as AIP-160 says;
//     AND/OR/NOT must be upper-case; unquoted values may hold letters,
//     digits, "_", "-" and "/" (Google's own examples leave account ids and
//     projects/N bare), anything else must be double-quoted; unknown
//     attributes and unknown state names are 400 INVALID_ARGUMENT.
//   - Sign-up tokens carry Google's real issuer (the x509 metadata URL of
//     cloud-commerce-partner@system.gserviceaccount.com) while the keys are
//     served by the emulator (CertsURL, SignupJWKSURL): code under test must
//     let tests inject the key URL, never derive it from the token.
//     google.roles is ["account_admin"] and user_identity a stable 21-digit
//     id: the real values are undocumented. Certificates are valid for ten
//     years so that advancing the clock never expires them (Google rotates
//     about every two weeks); RotateSignupKey and RotatePushKey keep serving
//     the previous key, as Google's endpoints do during a rotation.
package marketplacetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
)

// Server is a running emulator. Create one with New; all its methods are
// safe for concurrent use.
type Server struct {
	cfg   config
	clock *Clock
	http  *httptest.Server
	// client is the HTTP client ClientOptions hands out.
	client *http.Client
	mux    *http.ServeMux
	ps     *pstest.Server

	// done is closed by Close so that handlers sleeping for a fault return.
	done chan struct{}

	// mu guards all emulated Google state (procurement, service control,
	// faults, published events).
	mu    sync.Mutex
	rng   *rand.Rand
	state state
	sc    serviceControl
	pub   publisher
	flt   faults
	calls map[Method]int

	// Wiring owned by tokens.go and push.go: they manage their own locking.
	signup  *issuer
	push    *issuer
	pushSeq atomic.Int64 // message ids of Push

	// statement signs agent software statements (statements.go).
	statement *issuer

	// pushers counts the goroutines delivering push subscriptions; closed
	// (under mu) stops new ones.
	pushers sync.WaitGroup
	closed  bool

	closeOnce sync.Once
	closeErr  error
}

// Option configures a Server.
type Option func(*config)

type config struct {
	providerID       string
	start            time.Time
	seed             uint64
	services         map[string][]string
	metricTypes      map[string]ValueType // WithMetricType; INT64 when absent
	serviceOrder     []string
	duplicateRate    float64
	reorderWindow    int
	accountEventType bool
	httpAddr         string
	pubsubAddr       string
}

// DefaultServiceName is the Service Control service a Server knows unless
// WithService names others.
const DefaultServiceName = "example-service.endpoints.acme-provider.cloud.goog"

func defaultConfig() config {
	return config{
		providerID: "acme-provider",
		start:      time.Date(2026, time.January, 5, 9, 0, 0, 0, time.UTC),
		seed:       1,
	}
}

// WithProviderID sets the partner (provider) id; default "acme-provider".
func WithProviderID(id string) Option { return func(c *config) { c.providerID = id } }

// WithStartTime sets the emulator clock's initial time.
func WithStartTime(t time.Time) Option { return func(c *config) { c.start = t } }

// WithSeed seeds every random choice of the emulator (resource ids,
// duplicate and reordered deliveries, fault rates); default 1, so two runs
// with the same calls produce the same ids and events.
func WithSeed(seed int64) Option { return func(c *config) { c.seed = uint64(seed) } }

// WithService registers a Service Control service and its metric names.
// A metric given without a "/" is prefixed with "<name>/". The first
// service registered is the product of purchases (ServiceName). Without
// this option the server knows DefaultServiceName with the metrics
// "<service>/requests" and "<service>/storage_gib". Every metric is INT64
// DELTA, as billing metrics are; WithMetricType declares another type.
func WithService(name string, metrics ...string) Option {
	return func(c *config) {
		if c.services == nil {
			c.services = map[string][]string{}
		}
		if _, ok := c.services[name]; !ok {
			c.serviceOrder = append(c.serviceOrder, name)
		}
		for _, m := range metrics {
			if !containsSlash(m) {
				m = name + "/" + m
			}
			c.services[name] = append(c.services[name], m)
		}
		if c.services[name] == nil {
			c.services[name] = []string{}
		}
	}
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// WithDuplicateDeliveries publishes every event a second time with
// probability p (seeded), as Pub/Sub's at-least-once delivery may.
func WithDuplicateDeliveries(p float64) Option { return func(c *config) { c.duplicateRate = p } }

// WithReorder holds published events and releases them in shuffled groups
// of window events (seeded); Flush releases a partial group. Values below 2
// disable reordering.
func WithReorder(window int) Option { return func(c *config) { c.reorderWindow = window } }

// WithAccountEventType makes account messages carry eventType
// ACCOUNT_ACTIVE. By default they have the documented shape, without
// eventType.
func WithAccountEventType(on bool) Option { return func(c *config) { c.accountEventType = on } }

// WithHTTPAddr sets the listen address of the HTTP server (Procurement,
// Service Control, keys, control API); default "127.0.0.1:0", a free port.
func WithHTTPAddr(addr string) Option { return func(c *config) { c.httpAddr = addr } }

// WithPubSubAddr sets the listen address of the pstest gRPC server; default
// "127.0.0.1:0", a free port.
func WithPubSubAddr(addr string) Option { return func(c *config) { c.pubsubAddr = addr } }

// New starts a Server on loopback ports (or the addresses of WithHTTPAddr
// and WithPubSubAddr).
//
// In a test, pass its tb: New fails the test if the server cannot start and
// closes the server when the test ends. A program that is not a test (the
// examples' emulator, a runnable Example) passes nil: then New panics if the
// server cannot start, and the caller calls Close.
func New(tb testing.TB, opts ...Option) *Server {
	if tb == nil {
		s, err := start(opts...)
		if err != nil {
			panic(fmt.Errorf("marketplacetest: %w", err))
		}
		return s
	}
	tb.Helper()
	s, err := start(opts...)
	if err != nil {
		tb.Fatalf("marketplacetest: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// start starts a Server; New reports its error.
func start(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.services == nil {
		WithService(DefaultServiceName, "requests", "storage_gib")(&cfg)
	}
	s := &Server{
		cfg:   cfg,
		clock: NewClock(cfg.start),
		mux:   http.NewServeMux(),
		done:  make(chan struct{}),
		rng:   rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
		calls: map[Method]int{},
	}
	s.state.init()
	s.sc.init()
	s.signup = newIssuer(signupTokens, s.clock.Now, signupAccount, "")
	s.push = newIssuer(pushTokens, s.clock.Now, "accounts.google.com", DefaultPushServiceAccount)
	s.statement = newIssuer(statementTokens, s.clock.Now, agentspaceAccount, "")
	var err error
	psAddr := cfg.pubsubAddr
	if psAddr == "" {
		psAddr = "127.0.0.1:0"
	}
	if s.ps, err = newPubSubServer(psAddr); err != nil {
		return nil, err
	}
	if err := s.initPubSub(); err != nil {
		_ = s.ps.Close()
		return nil, fmt.Errorf("pubsub: %w", err)
	}
	s.signup.signupRoutes(s.mux)
	s.push.pushRoutes(s.mux)
	s.statement.statementRoutes(s.mux)
	s.controlRoutes(s.mux) // control API (control.go, edges helper)
	s.mux.Handle("/v1/", s.faultMiddleware(http.HandlerFunc(s.serveAPI)))
	s.http = httptest.NewUnstartedServer(s.mux)
	if cfg.httpAddr != "" {
		l, err := net.Listen("tcp", cfg.httpAddr)
		if err != nil {
			_ = s.ps.Close()
			return nil, fmt.Errorf("listen on %s: %w", cfg.httpAddr, err)
		}
		_ = s.http.Listener.Close()
		s.http.Listener = l
	}
	// The key issuers need the base URL before the first request can reach
	// them; the listener's address is known before Start.
	base := "http://" + s.http.Listener.Addr().String()
	s.signup.baseURL = base
	s.push.baseURL = base
	s.statement.baseURL = base
	s.http.Start()
	// httptest's client keeps Go's default of two idle connections per
	// host: concurrent callers would open a new connection for most calls
	// and measure connection set-up instead of the API.
	s.client = s.http.Client()
	if t, ok := s.client.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 64
	}
	// Procurement and Service Control require a bearer token (auth.go);
	// option.WithHTTPClient ignores token sources, so the client sends it.
	s.client.Transport = AuthTransport(s.client.Transport)
	s.clock.setOnChange(func() { s.Tick(context.Background()) })
	return s, nil
}

// Close stops every listener, pstest and the emulator's goroutines. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.clock.setOnChange(nil)
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.pushers.Wait()
		s.http.Close()
		s.closeErr = s.ps.Close()
	})
	return s.closeErr
}

// URL is the base URL of the HTTP server ("http://127.0.0.1:port"), which
// serves Procurement, Service Control, the key endpoints and the control API.
func (s *Server) URL() string { return s.http.URL }

// ProviderID is the partner id the emulator serves.
func (s *Server) ProviderID() string { return s.cfg.providerID }

// ServiceName is the Service Control service name of the product sold by
// Purchase (the first WithService, or DefaultServiceName).
func (s *Server) ServiceName() string { return s.cfg.serviceOrder[0] }

// Clock is the emulator's controllable clock.
func (s *Server) Clock() *Clock { return s.clock }

// ClientOptions are the options that point a generated google.golang.org/api
// client (cloudcommerceprocurement/v1 or servicecontrol/v1) at the emulator.
// Their HTTP client sends "Authorization: Bearer AccessToken".
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.http.URL + "/"),
		option.WithoutAuthentication(),
		option.WithHTTPClient(s.client), // sends AccessToken (auth.go)
	}
}

// newPubSubServer starts pstest on addr. pstest panics when it cannot
// listen; that becomes an error here.
func newPubSubServer(addr string) (ps *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pubsub: listen on %s: %v", addr, r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}

// Tick runs the emulator's scheduler now: entitlements whose scheduled
// start (newOfferStartTime) is not after the Clock become ACTIVE and
// publish ENTITLEMENT_ACTIVE. The scheduler also runs whenever the Clock
// moves and before every API call, so tests rarely need Tick.
func (s *Server) Tick(ctx context.Context) {
	_ = ctx
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runScheduledLocked()
}
