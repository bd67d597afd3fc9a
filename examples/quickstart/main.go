// Command quickstart plays one customer's whole life on Google Cloud
// Marketplace against the SDK, offline, in a few seconds:
//
//	go run ./examples/quickstart
//
// It starts the Marketplace emulator in-process (Procurement API, Service
// Control, Pub/Sub, sign-up keys), an sqlitestore in a temporary directory and
// the SDK (a marketplace.Processor pulling from Pub/Sub, a sign-up page and a
// usage.Reporter), then acts as the customer and as Google and prints what
// the SDK and the application's Handler did at each step:
//
//	purchase → sign-up with a signed JWT → account approved → parked
//	entitlement approved → ENTITLEMENT_ACTIVE → usage recorded, checked and
//	reported hourly → plan change requested and approved by an operator →
//	cancellation → ACCOUNT_DELETED → customer data purged
//
// The emulator's clock is manual, so the hours of usage pass in milliseconds.
// The program exits 0 only if every step happened and the usage billed equals
// the usage recorded.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	otelmetric "go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/promexport"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func main() { cmdmain.Run("quickstart", run) }

// metric is the usage metric the product bills by.
const metric = "requests"

// hourlyUsage is the usage the customer generates: per simulated hour, the
// amounts recorded at 10, 25 and 50 minutes past the hour.
var hourlyUsage = [][]int64{{120, 80, 45}, {300, 10, 7}, {64, 64, 64}}

// run plays the lifecycle and writes the timeline to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(out)
	verbose := fs.Bool("v", false, "also print the SDK's logs (to stderr)")
	stepTimeout := fs.Duration("step-timeout", 10*time.Second, "how long each step may take before the run fails")
	printMetrics := fs.Bool("metrics", false, "print the SDK's metrics (Prometheus text format) at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	began := time.Now()
	// The SDK's metrics, as saas-backend serves them on /metrics.
	metrics, err := promexport.New()
	if err != nil {
		return err
	}
	defer func() { _ = metrics.Shutdown(context.Background()) }()
	meterProvider := metrics.MeterProvider()

	// --- Google, played by the emulator ------------------------------------
	emu, err := marketplacetest.NewServer(marketplacetest.WithService(marketplacetest.DefaultServiceName, metric))
	if err != nil {
		return fmt.Errorf("start the emulator: %w", err)
	}
	defer emu.Close()
	clock := emu.Clock()

	// --- The vendor's backend: store, clients, reporter, processor ----------
	store, dbPath, closeStore, err := openTempStore(ctx, logger)
	if err != nil {
		return err
	}
	defer closeStore()

	tl := &timeline{out: out, now: clock.Now, callbacks: map[string]int{}}
	app := newApp(tl)
	proc, reporter, verifier, err := newSDK(ctx, emu, store, app, logger, meterProvider)
	if err != nil {
		return err
	}

	// The sign-up page, on a real loopback HTTP server.
	mux := http.NewServeMux()
	mux.Handle("POST /signup", marketplace.SignupHandler(verifier, app.signupPage(proc)))
	signupURL, stopSignup, err := serveSignup(mux)
	if err != nil {
		return err
	}
	defer stopSignup()

	// Pull from the Marketplace subscription, and report usage, in the
	// background until the run ends.
	stopWorkers, err := startWorkers(ctx, emu, proc, reporter)
	if err != nil {
		return err
	}
	defer func() { _ = stopWorkers() }()

	fmt.Fprintf(out, "gcpmarketplace quickstart: one customer's life on Google Cloud Marketplace, offline\n")
	fmt.Fprintf(out, "  provider %s, product %s\n  store %s\n\n", emu.ProviderID(), emu.ServiceName(), dbPath)

	d := &driver{ctx: ctx, tl: tl, emu: emu, proc: proc, store: store, reporter: reporter, app: app,
		signupURL: signupURL, stepTimeout: *stepTimeout}
	if err := d.lifecycle(); err != nil {
		fmt.Fprintf(out, "\nFAILED after %d of %d steps: %v\n", tl.steps, totalSteps, err)
		return err
	}
	if err := stopWorkers(); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if err := d.summary(time.Since(began)); err != nil {
		return err
	}
	if *printMetrics {
		fmt.Fprintf(out, "\n# The SDK's metrics (saas-backend serves them on /metrics):\n")
		return metrics.WriteText(out)
	}
	return nil
}

// reviewPlanChanges approves new purchases at once and holds plan changes
// for an operator (Processor.PendingApprovals, Approve, Reject).
var reviewPlanChanges = marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
	if r.Kind == marketplace.ApprovalPlanChange {
		return marketplace.Decision{Action: marketplace.ActionHold, MessageToUser: "Your plan change is being reviewed."}, nil
	}
	return marketplace.Decision{Action: marketplace.ActionApprove}, nil
})

// openTempStore opens an sqlitestore in a new temporary directory; closeStore
// closes it and deletes the directory.
func openTempStore(ctx context.Context, logger *slog.Logger) (store *sqlitestore.Store, dbPath string, closeStore func(), err error) {
	dir, err := os.MkdirTemp("", "gcpmarketplace-quickstart-")
	if err != nil {
		return nil, "", nil, err
	}
	dbPath = filepath.Join(dir, "marketplace.db")
	store, err = sqlitestore.Open(ctx, dbPath, sqlitestore.WithLogger(logger))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", nil, fmt.Errorf("open the store: %w", err)
	}
	return store, dbPath, func() { _ = store.Close(); _ = os.RemoveAll(dir) }, nil
}

// newSDK sets the SDK up against the emulator as a vendor's backend would:
// the Procurement client, the usage reporter, the processor calling app, and
// the sign-up token verifier, sharing one logger and one MeterProvider.
func newSDK(ctx context.Context, emu *marketplacetest.Server, store *sqlitestore.Store, app *app, logger *slog.Logger,
	meterProvider otelmetric.MeterProvider) (*marketplace.Processor, *usage.Reporter, *marketplace.SignupVerifier, error) {
	clock := emu.Clock()
	client, err := procurement.NewClient(ctx, emu.ProviderID(),
		procurement.WithClientOptions(emu.ClientOptions()...), procurement.WithLogger(logger),
		procurement.WithMeterProvider(meterProvider))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("procurement client: %w", err)
	}
	reporter, err := usage.New(ctx, emu.ServiceName(), store,
		usage.WithMetric(metric, usage.Int64),
		usage.WithClientOptions(emu.ClientOptions()...),
		usage.WithClock(clock.Now),
		usage.WithFlushInterval(10*time.Millisecond), // real time; production keeps the one-minute default
		usage.WithLogger(logger), usage.WithMeterProvider(meterProvider))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("usage reporter: %w", err)
	}

	proc, err := marketplace.New(store, client, app,
		marketplace.WithPolicy(reviewPlanChanges),
		marketplace.WithUsageReporter(reporter),
		marketplace.WithClock(clock.Now),
		// One message at a time so that the timeline reads in order;
		// production keeps the default (16), ordering per resource is kept
		// either way.
		marketplace.WithConcurrency(1),
		marketplace.WithLogger(logger), marketplace.WithMeterProvider(meterProvider))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("processor: %w", err)
	}
	verifier, err := marketplace.NewSignupVerifier([]string{emu.ServiceName()},
		marketplace.WithSignupCertsURL(emu.CertsURL()), // emulator only: production uses Google's URL
		marketplace.WithSignupClock(clock.Now),
		marketplace.WithSignupLogger(logger))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sign-up verifier: %w", err)
	}
	return proc, reporter, verifier, nil
}

// serveSignup serves h on a loopback HTTP server until stop and returns the
// sign-up page's URL.
func serveSignup(h http.Handler) (signupURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	web := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = web.Serve(ln) }()
	signupURL = "http://" + ln.Addr().String() + "/signup"
	return signupURL, func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = web.Shutdown(shutdownCtx)
		<-served
	}, nil
}

// startWorkers pulls from the emulator's Marketplace subscription and runs
// the usage reporter in the background; stopWorkers stops both and returns
// Receive's error (nil after the first call).
func startWorkers(ctx context.Context, emu *marketplacetest.Server, proc *marketplace.Processor,
	reporter *usage.Reporter) (stopWorkers func() error, err error) {
	var workers sync.WaitGroup
	ps, err := pubsub.NewClient(ctx, "vendor-project", emu.PubSubOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	receiveErr := make(chan error, 1)
	workers.Go(func() { receiveErr <- proc.Receive(bgCtx, ps.Subscriber(emu.Subscription())) })
	workers.Go(func() { _ = reporter.Run(bgCtx) })
	stopped := false
	stopWorkers = func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopBackground()
		err := <-receiveErr
		workers.Wait()
		_ = ps.Close()
		return err
	}
	return stopWorkers, nil
}
