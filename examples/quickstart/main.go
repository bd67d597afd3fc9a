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
	"net/http"
	"os"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/promexport"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
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
	emu := marketplacetest.New(nil, marketplacetest.WithService(marketplacetest.DefaultServiceName, metric))
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
	defer func() { _ = proc.Close() }()

	// The sign-up page, on a real loopback HTTP server.
	mux := http.NewServeMux()
	mux.Handle("POST /signup", signup.Handler(verifier, &signup.Config{Runtime: gcpmarketplace.Runtime{Logger: logger, Clock: clock.Now}}, app.signupPage(proc)))
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
		return marketplace.Decision{Outcome: marketplace.OutcomeQueued, MessageToUser: "Your plan change is being reviewed."}, nil
	}
	return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
})
