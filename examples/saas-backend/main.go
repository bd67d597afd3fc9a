// Command saas-backend is a production starter for selling a SaaS product
// on Google Cloud Marketplace with this SDK: copy it, replace the parts
// marked "your app", deploy.
//
// It runs, in one process:
//
//   - a marketplace.Processor receiving Marketplace notifications from a
//     Pub/Sub pull subscription, or with -transport=push from a push
//     subscription on /pubsub/push, for Cloud Run (exactly-once effects,
//     approvals, parking, purges; transport.go);
//   - the sign-up page behind your listing's sign-up URL (HTML form, token
//     verification, a tenant of your own linked to the Procurement account);
//   - manual approval endpoints for operators (/ops/...);
//   - a usage.Reporter reporting metered usage hourly to Service Control,
//     and an example metered API endpoint that records it;
//   - /healthz, /readyz and /metrics (the SDK's OpenTelemetry metrics as text);
//   - graceful shutdown on SIGTERM.
//
// State lives in SQLite by default (-database marketplace.db) or PostgreSQL
// (-database postgres://...), for several replicas. Credentials are
// Application Default Credentials.
//
//	go run ./examples/saas-backend -emulator   # everything offline, no Google account
//
// See README.md for the configuration and for running against Google.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	servicecontrol "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/promexport"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/doctor"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func main() { cmdmain.Serve("saas-backend", serve) }

// shutdownTimeout bounds the graceful shutdown: HTTP requests in flight,
// messages in flight and a last usage flush.
const shutdownTimeout = 20 * time.Second

// stateStore is what the backend keeps its state in: the processor's Store
// and the usage reporter's Ledger, in the same database.
type stateStore interface {
	marketplace.Store
	signup.UsedTokens // sign-up tokens already used
	ledger.Ledger
}

// backend is the running service.
type backend struct {
	cfg          config
	log          *slog.Logger
	emu          *marketplacetest.Server // nil unless -emulator
	store        stateStore
	proc         *marketplace.Processor
	reporter     *usage.Reporter
	tenants      *tenantDirectory
	metrics      *promexport.Exporter
	sub          *pubsub.Subscriber   // -transport=pull
	pushVerifier *verify.PushVerifier // -transport=push
	url          string               // base URL, e.g. http://127.0.0.1:8080
	ready        atomic.Bool
	now          func() time.Time
}

// serve serves until ctx is done, then shuts down gracefully. Logs go to
// out; getenv reads the environment; ready, a hook that tests use, is called
// (if not nil) once the backend serves.
func serve(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(*backend)) error {
	return serveWithWallClock(ctx, args, getenv, time.Now, out, ready)
}

// serveWithWallClock is serve with the wall clock that the -emulator's clock
// follows, which tests replace with one that stalls and steps back.
func serveWithWallClock(ctx context.Context, args []string, getenv func(string) string, wall func() time.Time,
	out io.Writer, ready func(*backend)) (err error) {
	cfg, err := parseConfig(args, getenv, out)
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	b := &backend{cfg: cfg, log: slog.New(slog.NewTextHandler(out, nil)), now: time.Now}

	// Where Google is: the real APIs with Application Default Credentials,
	// an emulator in this process (-emulator), or an external emulator.
	var googleOpts, pubsubOpts []option.ClientOption
	var verifyCfg verify.Config // the sign-up keys: Google's, unless an emulator serves them
	switch {
	case cfg.Emulator:
		emu, stopEmulator, err := startEmulator(&b.cfg)
		if err != nil {
			return err
		}
		defer stopEmulator()                // after the store's Close, deferred below
		defer emu.Clock().Follow(wall, 0)() // time passes as in production
		b.emu, b.now = emu, emu.Clock().Now
		googleOpts, pubsubOpts = emu.ClientOptions(), emu.PubSubOptions()
		verifyCfg.SignupCertsURL = emu.CertsURL()
	case cfg.ProcurementEndpoint != "":
		b.log.Warn("using an emulator's endpoints from the environment, not Google's",
			"procurement", cfg.ProcurementEndpoint, "service_control", cfg.ServiceControlEndpoint)
		googleOpts = []option.ClientOption{option.WithEndpoint(cfg.ProcurementEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
		verifyCfg.SignupCertsURL = cfg.SignupCertsURL
		// The Pub/Sub client reads PUBSUB_EMULATOR_HOST itself.
	}
	cfg = b.cfg
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{cfg.ServiceName}
		b.cfg.Audiences = cfg.Audiences
	}
	scOpts := googleOpts
	if cfg.ServiceControlEndpoint != "" {
		scOpts = []option.ClientOption{option.WithEndpoint(cfg.ServiceControlEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
	}
	if cfg.Doctor {
		return runDoctor(ctx, cfg, googleOpts, scOpts, pubsubOpts, out)
	}

	// Metrics: the SDK's OpenTelemetry instruments, read by /metrics. The
	// same MeterProvider goes to the Procurement client, the usage reporter
	// and the processor.
	b.metrics, err = promexport.New()
	if err != nil {
		return err
	}
	meterProvider := b.metrics.MeterProvider()
	defer func() { _ = b.metrics.Shutdown(context.Background()) }()

	// The SDK.
	client, err := procurement.NewClientWithConfig(ctx, cfg.ProviderID,
		&procurement.Config{Runtime: gcpmarketplace.Runtime{Logger: b.log, MeterProvider: meterProvider}}, googleOpts...)
	if err != nil {
		return fmt.Errorf("procurement client: %w%s", err, credentialsHint)
	}
	closePubSub, err := b.subscribe(ctx, pubsubOpts)
	if err != nil {
		return err
	}
	defer closePubSub()

	// State, opened once the clients above have found their credentials:
	// a start that cannot reach Google creates no database.
	b.store, err = openStore(ctx, cfg, b.log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the store: %w", cerr)
		}
	}()

	reporterCfg := &usage.Config{
		Runtime: gcpmarketplace.Runtime{Logger: b.log, MeterProvider: meterProvider, Clock: b.now},
		Metrics: map[string]usage.MetricKind{},
		OnServingChange: func(ctx context.Context, c usage.ServingChange) {
			// Your app: stop (or resume) serving the customer, e.g. flag the tenant.
			b.log.WarnContext(ctx, "customer serving state changed", "entitlement_id", c.EntitlementID,
				"serving", c.Serving, "code", c.Block.Code)
		},
		DeadlineAlertMargin: 15 * time.Minute,
		OnDeadlineAlert: func(ctx context.Context, a usage.DeadlineAlert) {
			// Your app: page someone. Usage not reported by the deadline is not billed.
			b.log.ErrorContext(ctx, "usage window not reported by its deadline", "operation_id", a.Window.OperationID,
				"entitlement_id", a.Window.EntitlementID, "missed", a.Missed, "reason", a.Window.Reason)
		},
	}
	if cfg.Emulator {
		reporterCfg.FlushInterval = time.Second // the emulator's clock jumps by hours
	}
	for _, m := range cfg.Metrics {
		reporterCfg.Metrics[m] = usage.Int64
	}
	b.reporter, err = usage.New(ctx, cfg.ServiceName, b.store, reporterCfg, scOpts...)
	if err != nil {
		return fmt.Errorf("usage reporter: %w%s", err, credentialsHint)
	}
	b.tenants = newTenantDirectory()
	var policy marketplace.Policy // nil: approve automatically
	if cfg.Approval == "manual" {
		policy = marketplace.ManualApproval("We are setting up your subscription; this usually takes one business day.")
	}
	b.proc, err = marketplace.New(b.store, client, &app{tenants: b.tenants, log: b.log},
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Logger: b.log, MeterProvider: meterProvider, Clock: b.now},
			Policy: policy, Usage: b.reporter})
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	defer func() { _ = b.proc.Close() }()
	verifyCfg.Runtime = gcpmarketplace.Runtime{Logger: b.log, Clock: b.now}
	verifier, err := verify.NewSignupVerifier(cfg.Audiences, &verifyCfg)
	if err != nil {
		return fmt.Errorf("sign-up verifier: %w", err)
	}
	sessions, err := b.signupSessions(verifier)
	if err != nil {
		return err
	}

	// HTTP.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (-listen or $PORT): %w", cfg.Listen, err)
	}
	b.url = "http://" + ln.Addr().String()
	if err := b.verifyPushes(); err != nil {
		return err
	}
	web := &http.Server{
		Handler:           b.routes(sessions),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	var workers sync.WaitGroup
	webErr := make(chan error, 1)
	workers.Go(func() {
		if err := web.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			webErr <- err
		}
	})
	defer workers.Wait()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = web.Shutdown(shutdownCtx)
	}()

	// Check that the store and the Procurement API answer, with these
	// credentials, before taking messages.
	if err := b.proc.Ping(ctx); err != nil {
		return fmt.Errorf("provider %q: %w", cfg.ProviderID, err)
	}

	// Receive notifications and report usage until shutdown. With push, on
	// Cloud Run, keep CPU allocated outside requests for this, or call
	// POST /ops/usage/flush from Cloud Scheduler.
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	receiveErr := make(chan error, 1)
	workers.Go(func() { receiveErr <- b.receive(bg) })
	workers.Go(func() { _ = b.reporter.Run(bg) })
	if err := b.startPushing(ctx); err != nil {
		return err
	}

	b.ready.Store(true)
	b.log.Info("serving", "url", b.url, "provider", cfg.ProviderID, b.source(),
		"service", cfg.ServiceName, "store", storeKind(cfg.DatabaseURL), "approval", cfg.Approval)
	if b.emu != nil {
		b.printEmulatorHelp(out)
	}
	if ready != nil {
		ready(b)
	}

	var webFailure error
	select {
	case <-ctx.Done():
		b.log.Info("shutting down")
	case err := <-receiveErr:
		receiveErr <- err // read again below
	case webFailure = <-webErr:
	}
	b.ready.Store(false)
	_ = b.proc.Close() // Run returns once the messages in flight are settled
	stopBackground()
	if err := <-receiveErr; err != nil {
		return err
	}
	if webFailure != nil {
		return fmt.Errorf("http server: %w", webFailure)
	}
	// Close stops the reporter with a last flush, so that usage of closed
	// windows does not wait for the next start. Nothing is lost without it:
	// the ledger keeps it.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := b.reporter.Close(flushCtx); err != nil {
		b.log.Warn("final usage flush failed; the next start reports it", "error", err)
	}
	b.log.Info("stopped")
	return nil
}

// errDoctorFailed is returned by -doctor when a check failed.
var errDoctorFailed = errors.New("configuration check failed (see the report above)")

// runDoctor checks the configuration with doctor.Run and prints the report
// to out. Every check runs, even when a client cannot be created.
func runDoctor(ctx context.Context, cfg config, googleOpts, scOpts, pubsubOpts []option.ClientOption, out io.Writer) error {
	p := doctor.Params{
		ProviderID:     cfg.ProviderID,
		PubSubProject:  cfg.Project,
		Subscription:   cfg.Subscription,
		ServiceName:    cfg.ServiceName,
		SignupAudience: cfg.Audiences[0],
	}
	// The clients with options of their own (an emulator's endpoints);
	// doctor.Run creates the others with googleOpts, and reports a client
	// it cannot create.
	if ps, err := pubsub.NewClient(ctx, cfg.Project, pubsubOpts...); err == nil {
		defer ps.Close()
		p.PubSub = ps
	}
	if sc, err := servicecontrol.NewService(ctx, scOpts...); err == nil {
		p.ServiceControl = sc
	}
	report := doctor.Run(ctx, p, googleOpts...)
	fmt.Fprint(out, report.String())
	if !report.OK() {
		return errDoctorFailed
	}
	return nil
}

const credentialsHint = "\n(credentials are Application Default Credentials: on Google Cloud, run as the service account" +
	" linked in Producer Portal; locally, `gcloud auth application-default login` or GOOGLE_APPLICATION_CREDENTIALS)"

// openStore opens PostgreSQL for a postgres:// URL and SQLite otherwise.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (stateStore, error) {
	url := cfg.DatabaseURL
	if storeKind(url) == "postgres" {
		s, err := pgstore.Open(ctx, url, pgstore.WithLogger(log), pgstore.WithSchema(cfg.PGSchema))
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store (-database or $%s): %w", envDatabase, err)
		}
		return s, nil
	}
	path := strings.TrimPrefix(url, "sqlite://")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open SQLite store %q (-database or $%s): %w", path, envDatabase, err)
	}
	return s, nil
}

func storeKind(url string) string {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// routes is every HTTP endpoint of the backend.
func (b *backend) routes(sessions *signup.Sessions) http.Handler {
	mux := http.NewServeMux()
	// The sign-up URL configured in Producer Portal. Google POSTs the token.
	// The session carries the verified claims to the form, which the
	// customer may take an hour over.
	mux.Handle("POST /signup", sessions.Begin("/signup/form"))
	form := sessions.Handler(b.signupPage)
	mux.Handle("GET /signup/form", form)
	mux.Handle("POST /signup/form", form)
	mux.HandleFunc("GET /signup", b.signupInfo)
	// The push subscription's endpoint (-transport=push).
	if b.pushVerifier != nil {
		mux.Handle("POST "+pushPath, b.proc.PushHandler(b.pushVerifier))
	}
	// Your product's API, metered.
	mux.HandleFunc("POST /api/work", b.work)
	// Probes and metrics.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", b.readyz)
	mux.Handle("GET /metrics", b.metrics.Handler())
	// Operators.
	b.opsRoutes(mux)
	if b.emu != nil {
		b.emulatorRoutes(mux)
	}
	return mux
}
