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
//   - the operator console and JSON API (package ops, on /ops/): customers,
//     parked entitlements, approvals, poison messages, blocked consumers,
//     usage billed;
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
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
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
	cfg           config
	log           *slog.Logger
	emu           *marketplacetest.Server // nil unless -emulator
	store         stateStore
	proc          *marketplace.Processor
	reporter      *usage.Reporter
	tenants       *tenantDirectory
	plans         *planCatalog // -plans (app.go)
	metrics       *promexport.Exporter
	sub           *pubsub.Subscriber   // -transport=pull
	pushVerifier  *verify.PushVerifier // -transport=push
	url           string               // base URL, e.g. http://127.0.0.1:8080
	ready         atomic.Bool
	opsSessionKey []byte // the console's cookie key (ops.go)
	now           func() time.Time
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
	ep, stopEmulator, err := b.connectGoogle(wall)
	if err != nil {
		return err
	}
	defer stopEmulator() // after the store's Close, deferred below
	cfg = b.cfg
	if cfg.Doctor {
		return runDoctor(ctx, cfg, ep.google, ep.serviceControl, ep.pubsub, out)
	}

	// Metrics: the SDK's OpenTelemetry instruments, read by /metrics. The
	// same MeterProvider goes to the Procurement client, the usage reporter
	// and the processor.
	b.metrics, err = promexport.New()
	if err != nil {
		return err
	}
	defer func() { _ = b.metrics.Shutdown(context.Background()) }()

	// The SDK.
	// The Procurement client times its retries against real deadlines, so
	// it keeps the wall clock even when the emulator's clock is the
	// business clock (b.now).
	rt := b.runtime()
	rt.Clock = nil
	client, err := procurement.NewClientWithConfig(ctx, cfg.ProviderID, &procurement.Config{Runtime: rt}, ep.google...)
	if err != nil {
		return fmt.Errorf("procurement client: %w%s", err, credentialsHint)
	}
	closePubSub, err := b.subscribe(ctx, ep.pubsub)
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
	defer func() {
		if b.proc != nil {
			_ = b.proc.Close()
		}
	}()
	sessions, err := b.newProcessor(ctx, client, ep)
	if err != nil {
		return err
	}
	return b.run(ctx, sessions, out, ready)
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
func (b *backend) routes(sessions *signup.Sessions) (http.Handler, error) {
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
	if err := b.opsRoutes(mux); err != nil {
		return nil, err
	}
	if b.emu != nil {
		b.emulatorRoutes(mux)
	}
	return mux, nil
}

// runtime is the logger, meter provider and clock every SDK component of
// this backend shares (gcpmarketplace.Runtime, embedded in each Config).
func (b *backend) runtime() gcpmarketplace.Runtime {
	return gcpmarketplace.Runtime{Logger: b.log, MeterProvider: b.metrics.MeterProvider(), Clock: b.now}
}
