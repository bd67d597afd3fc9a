package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	otelmetric "go.opentelemetry.io/otel/metric"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// The vendor's backend, set up as in production against the emulator.

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
	meterProvider otelmetric.MeterProvider) (*marketplace.Processor, *usage.Reporter, *verify.SignupVerifier, error) {
	clock := emu.Clock()
	client, err := procurement.NewClientWithConfig(ctx, emu.ProviderID(),
		&procurement.Config{Runtime: gcpmarketplace.Runtime{Logger: logger, MeterProvider: meterProvider}}, emu.ClientOptions()...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("procurement client: %w", err)
	}
	reporter, err := usage.New(ctx, emu.ServiceName(), store, &usage.Config{
		Runtime:       gcpmarketplace.Runtime{Logger: logger, MeterProvider: meterProvider, Clock: clock.Now},
		Metrics:       map[string]usage.MetricKind{metric: usage.Int64},
		FlushInterval: 10 * time.Millisecond, // real time; production keeps the one-minute default
	}, emu.ClientOptions()...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("usage reporter: %w", err)
	}

	proc, err := marketplace.New(store, client, app, &marketplace.Config{
		Runtime: gcpmarketplace.Runtime{Logger: logger, MeterProvider: meterProvider, Clock: clock.Now},
		Policy:  reviewPlanChanges,
		Usage:   reporter,
		// One message at a time so that the timeline reads in order;
		// production keeps the default (16), ordering per resource is kept
		// either way.
		Concurrency: 1,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("processor: %w", err)
	}
	verifier, err := verify.NewSignupVerifier([]string{emu.ServiceName()}, &verify.Config{
		Runtime:        gcpmarketplace.Runtime{Logger: logger, Clock: clock.Now},
		SignupCertsURL: emu.CertsURL(), // emulator only: production uses Google's URL
	})
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
// Run's error (nil after the first call).
func startWorkers(ctx context.Context, emu *marketplacetest.Server, proc *marketplace.Processor,
	reporter *usage.Reporter) (stopWorkers func() error, err error) {
	var workers sync.WaitGroup
	ps, err := pubsub.NewClient(ctx, "vendor-project", emu.PubSubOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client: %w", err)
	}
	bgCtx, stopBackground := context.WithCancel(ctx)
	receiveErr := make(chan error, 1)
	workers.Go(func() { receiveErr <- proc.Run(bgCtx, ps.Subscriber(emu.Subscription())) })
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
