// Command push-endpoint is the production starter for a backend that
// receives Google Cloud Marketplace notifications through a Pub/Sub push
// subscription, which suits Cloud Run and other request-driven platforms:
// Pub/Sub POSTs each message to /pubsub/push with a Google-signed OIDC token,
// verified by verify.PushVerifier before the body is read, and
// Processor.PushHandler answers 2xx only after the message's effects are
// committed (anything else makes Pub/Sub retry).
//
// Everything else is as in examples/saas-backend: the sign-up page, manual
// approval endpoints, the usage reporter, /healthz, /readyz, /metrics,
// graceful shutdown on SIGTERM, SQLite or PostgreSQL.
//
//	go run ./examples/push-endpoint -emulator   # everything offline, no Google account
//
// See README.md for the configuration and for running against Google.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/promexport"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "saas-backend:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. Logs go to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	return serve(ctx, args, os.Getenv, out, nil)
}

// shutdownTimeout bounds the graceful shutdown: HTTP requests in flight,
// messages in flight and a last usage flush.
const shutdownTimeout = 20 * time.Second

// stateStore is what the backend keeps its state in: the processor's Store
// and the usage reporter's Ledger, in the same database.
type stateStore interface {
	marketplace.Store
	signup.UsedTokens // sign-up tokens already used
	usage.Ledger
}

// backend is the running service.
type backend struct {
	cfg      config
	log      *slog.Logger
	emu      *marketplacetest.Server // nil unless -emulator
	store    stateStore
	proc     *marketplace.Processor
	reporter *usage.Reporter
	tenants  *tenantDirectory
	metrics  *promexport.Exporter
	url      string // base URL, e.g. http://127.0.0.1:8080
	ready    atomic.Bool
	now      func() time.Time
}

// serve is run with the environment and a hook that tests use: ready is
// called (if not nil) once the backend serves.
func serve(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(*backend)) (err error) {
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
	var googleOpts []option.ClientOption
	var verifyCfg verify.Config // the signing keys: Google's, unless an emulator serves them
	switch {
	case cfg.Emulator:
		emu, stopEmulator, err := startEmulator(&b.cfg)
		if err != nil {
			return err
		}
		defer stopEmulator()               // after the store's Close, deferred below
		defer emu.Clock().Follow(nil, 0)() // time passes as in production
		b.emu, b.now = emu, emu.Clock().Now
		googleOpts = emu.ClientOptions()
		verifyCfg.SignupCertsURL = emu.CertsURL()
		verifyCfg.PushJWKSURL = emu.PushJWKSURL()
	case cfg.ProcurementEndpoint != "":
		b.log.Warn("using an emulator's endpoints from the environment, not Google's",
			"procurement", cfg.ProcurementEndpoint, "service_control", cfg.ServiceControlEndpoint)
		googleOpts = []option.ClientOption{option.WithEndpoint(cfg.ProcurementEndpoint), option.WithoutAuthentication()}
		verifyCfg.SignupCertsURL = cfg.SignupCertsURL
		verifyCfg.PushJWKSURL = cfg.PushJWKSURL
	}
	cfg = b.cfg
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{cfg.ServiceName}
		b.cfg.Audiences = cfg.Audiences
	}
	scOpts := googleOpts
	if cfg.ServiceControlEndpoint != "" {
		scOpts = []option.ClientOption{option.WithEndpoint(cfg.ServiceControlEndpoint), option.WithoutAuthentication()}
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
	client, err := procurement.NewClient(ctx, cfg.ProviderID,
		procurement.WithClientOptions(googleOpts...), procurement.WithLogger(b.log),
		procurement.WithMeterProvider(meterProvider))
	if err != nil {
		return fmt.Errorf("procurement client: %w%s", err, credentialsHint)
	}

	// State, opened once the Procurement client has found its credentials:
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

	reporterOpts := []usage.Option{
		usage.WithClientOptions(scOpts...), usage.WithClock(b.now), usage.WithLogger(b.log),
		usage.WithMeterProvider(meterProvider),
		usage.WithServingChanged(func(ctx context.Context, c usage.ServingChange) {
			// Your app: stop (or resume) serving the customer, e.g. flag the tenant.
			b.log.WarnContext(ctx, "customer serving state changed", "entitlement_id", c.EntitlementID,
				"serving", c.Serving, "code", c.Block.Code)
		}),
		usage.WithDeadlineAlert(15*time.Minute, func(ctx context.Context, a usage.DeadlineAlert) {
			// Your app: page someone. Usage not reported by the deadline is not billed.
			b.log.ErrorContext(ctx, "usage window not reported by its deadline", "operation_id", a.Window.OperationID,
				"entitlement_id", a.Window.EntitlementID, "missed", a.Missed, "reason", a.Window.Reason)
		}),
	}
	if cfg.Emulator {
		reporterOpts = append(reporterOpts, usage.WithFlushInterval(time.Second)) // the emulator's clock jumps by hours
	}
	for _, m := range cfg.Metrics {
		reporterOpts = append(reporterOpts, usage.WithMetric(m, usage.Int64))
	}
	b.reporter, err = usage.New(ctx, cfg.ServiceName, b.store, reporterOpts...)
	if err != nil {
		return fmt.Errorf("usage reporter: %w%s", err, credentialsHint)
	}
	b.tenants = newTenantDirectory()
	policy := marketplace.AutoApprove
	if cfg.Approval == "manual" {
		policy = marketplace.ManualApproval("We are setting up your subscription; this usually takes one business day.")
	}
	b.proc, err = marketplace.New(b.store, client, &app{tenants: b.tenants, log: b.log},
		marketplace.WithPolicy(policy),
		marketplace.WithUsageReporter(b.reporter),
		marketplace.WithLogger(b.log),
		marketplace.WithMeterProvider(meterProvider),
		marketplace.WithClock(b.now))
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
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
	if cfg.PushAudience == "" { // -emulator: the emulator pushes to this process
		cfg.PushAudience = b.url + "/pubsub/push"
		b.cfg.PushAudience = cfg.PushAudience
	}
	verifyCfg.PushServiceAccount = cfg.PushAccount
	pushVerifier, err := verify.NewPushVerifier(cfg.PushAudience, &verifyCfg)
	if err != nil {
		return fmt.Errorf("push verifier: %w", err)
	}
	web := &http.Server{
		Handler:           b.routes(sessions, pushVerifier),
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

	// Catch up with what happened while the backend was down, before taking
	// new messages. This is also the check that the Procurement API is
	// reachable with these credentials.
	report, err := b.proc.Reconcile(ctx)
	if err != nil {
		return fmt.Errorf("initial reconcile with the Procurement API for provider %q: %w", cfg.ProviderID, err)
	}
	if report.Changed() {
		b.log.Info("reconciled with the Procurement API", "accounts_added", len(report.AccountsAdded),
			"entitlements_added", len(report.EntitlementsAdded), "approved", len(report.Approved), "parked", len(report.Parked))
	}

	// Report usage, and prune old event ids (Receive does it for pull
	// subscribers), until shutdown. On Cloud Run, keep CPU allocated outside
	// requests for this, or call POST /ops/usage/flush from Cloud Scheduler.
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	workers.Go(func() { _ = b.reporter.Run(bg) })
	workers.Go(func() { b.pruneHourly(bg) })

	if b.emu != nil {
		// The emulator delivers to this endpoint as Pub/Sub would.
		if err := b.emu.CreateSubscription(ctx, pushSubscription, cfg.PushAudience); err != nil {
			return fmt.Errorf("emulator push subscription: %w", err)
		}
	}
	b.ready.Store(true)
	b.log.Info("serving", "url", b.url, "provider", cfg.ProviderID, "push_audience", cfg.PushAudience,
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
	case webFailure = <-webErr:
	}
	b.ready.Store(false)
	stopBackground()
	if webFailure != nil {
		return fmt.Errorf("http server: %w", webFailure)
	}
	// A last flush, so that usage of closed windows does not wait for the
	// next start. Nothing is lost without it: the ledger keeps it.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := b.reporter.Flush(flushCtx); err != nil {
		b.log.Warn("final usage flush failed; the next start reports it", "error", err)
	}
	b.log.Info("stopped")
	return nil
}

// pruneHourly deletes processed event ids past their retention, as Receive
// does for pull subscribers.
func (b *backend) pruneHourly(ctx context.Context) {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if n, err := b.proc.Prune(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("pruning processed event ids failed", "error", err)
		} else if n > 0 {
			b.log.Info("pruned processed event ids", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
func (b *backend) routes(sessions *signup.Sessions, pushVerifier *verify.PushVerifier) http.Handler {
	mux := http.NewServeMux()
	// The push subscription's endpoint.
	mux.Handle("POST /pubsub/push", b.proc.PushHandler(pushVerifier))
	// The sign-up URL configured in Producer Portal. Google POSTs the token.
	// The session carries the verified claims to the form, which the
	// customer may take an hour over.
	mux.Handle("POST /signup", sessions.Begin("/signup/form"))
	form := sessions.Handler(b.signupPage)
	mux.Handle("GET /signup/form", form)
	mux.Handle("POST /signup/form", form)
	mux.HandleFunc("GET /signup", b.signupInfo)
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
