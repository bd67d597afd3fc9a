package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// googleEndpoints is where the clients find Google (or an emulator).
type googleEndpoints struct {
	google, pubsub, serviceControl []option.ClientOption
	verify                         verify.Config // the sign-up keys: Google's, unless an emulator serves them
}

// connectGoogle decides where Google is: the real APIs with Application
// Default Credentials, an emulator in this process (-emulator), or an
// external emulator. It completes b.cfg (the emulator's names, the default
// audience). stop, never nil, stops the emulator; call it after the store's
// Close.
func (b *backend) connectGoogle(wall func() time.Time) (ep googleEndpoints, stop func(), err error) {
	stop = func() {}
	switch {
	case b.cfg.Emulator:
		emu, stopEmulator, err := startEmulator(&b.cfg)
		if err != nil {
			return ep, nil, err
		}
		stopFollowing := emu.Clock().Follow(wall, 0) // time passes as in production
		stop = func() {
			stopFollowing()
			stopEmulator()
		}
		b.emu, b.now = emu, emu.Clock().Now
		ep.google, ep.pubsub = emu.ClientOptions(), emu.PubSubOptions()
		ep.verify.SignupCertsURL = emu.CertsURL()
	case b.cfg.ProcurementEndpoint != "":
		b.log.Warn("using an emulator's endpoints from the environment, not Google's",
			"procurement", b.cfg.ProcurementEndpoint, "service_control", b.cfg.ServiceControlEndpoint)
		ep.google = []option.ClientOption{option.WithEndpoint(b.cfg.ProcurementEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
		ep.verify.SignupCertsURL = b.cfg.SignupCertsURL
		// The Pub/Sub client reads PUBSUB_EMULATOR_HOST itself.
	}
	if len(b.cfg.Audiences) == 0 {
		b.cfg.Audiences = []string{b.cfg.ServiceName}
	}
	ep.serviceControl = ep.google
	if b.cfg.ServiceControlEndpoint != "" {
		ep.serviceControl = []option.ClientOption{option.WithEndpoint(b.cfg.ServiceControlEndpoint), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: marketplacetest.AccessToken}))}
	}
	return ep, stop, nil
}

// reporterConfig is the usage reporter's configuration, with your app's
// hooks.
func (b *backend) reporterConfig() *usage.Config {
	reporterCfg := &usage.Config{
		Runtime: b.runtime(),
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
	if b.cfg.Emulator {
		reporterCfg.FlushInterval = time.Second // the emulator's clock jumps by hours
	}
	for _, m := range b.cfg.Metrics {
		reporterCfg.Metrics[m] = usage.Int64
	}
	return reporterCfg
}

// approvalPolicy is the processor's Policy for -approval: nil (approve
// everything), the manual queue for everything, or the queue for plan
// changes only.
func approvalPolicy(mode string) marketplace.Policy {
	const waiting = "We are setting up your subscription; this usually takes one business day."
	switch mode {
	case approvalManual:
		return marketplace.ManualApproval(waiting)
	case approvalPlanChanges:
		return marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
			if r.Kind == marketplace.ApprovalPlanChange {
				return marketplace.Decision{Outcome: marketplace.OutcomeQueued, MessageToUser: "We are reviewing your plan change."}, nil
			}
			return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
		})
	}
	return nil
}

// newProcessor creates the usage reporter, the processor and the sign-up
// sessions on b.store. The caller closes b.proc once set, even on error.
func (b *backend) newProcessor(ctx context.Context, client *procurement.Client, ep googleEndpoints) (_ *signup.Sessions, err error) {
	cfg := b.cfg
	b.reporter, err = usage.New(ctx, cfg.ServiceName, b.store, b.reporterConfig(), ep.serviceControl...)
	if err != nil {
		return nil, fmt.Errorf("usage reporter: %w%s", err, credentialsHint)
	}
	b.tenants = newTenantDirectory()
	b.plans = newPlanCatalog(cfg.Plans)
	b.proc, err = marketplace.New(b.store, client, &app{tenants: b.tenants, plans: b.plans, log: b.log},
		&marketplace.Config{Runtime: b.runtime(),
			Policy: approvalPolicy(cfg.Approval), Usage: b.reporter})
	if err != nil {
		b.proc = nil
		return nil, fmt.Errorf("processor: %w", err)
	}
	verifyCfg := ep.verify
	verifyCfg.Runtime = b.runtime()
	verifier, err := verify.NewSignupVerifier(cfg.Audiences, &verifyCfg)
	if err != nil {
		return nil, fmt.Errorf("sign-up verifier: %w", err)
	}
	return b.signupSessions(verifier)
}

// run serves HTTP, receives notifications and reports usage until ctx is
// done or the receiving or the web server fails, then shuts down in order.
func (b *backend) run(ctx context.Context, sessions *signup.Sessions, out io.Writer, ready func(*backend)) error {
	var workers sync.WaitGroup
	defer workers.Wait()
	web, webErr, err := b.startWeb(ctx, sessions, &workers)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = web.Shutdown(shutdownCtx)
	}()

	// Check that the store and the Procurement API answer, with these
	// credentials, before taking messages.
	if err := b.proc.Ping(ctx); err != nil {
		return fmt.Errorf("provider %q: %w", b.cfg.ProviderID, err)
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
	b.waitRunning(ctx, receiveErr)
	b.announce(out, ready)

	var webFailure error
	select {
	case <-ctx.Done():
		b.log.Info("shutting down")
	case err := <-receiveErr:
		receiveErr <- err // read again in shutdown
	case webFailure = <-webErr:
	}
	return b.shutdown(ctx, stopBackground, receiveErr, webFailure)
}

// startWeb listens on -listen and serves the routes in a goroutine of
// workers. A failure of the server, other than its shutdown, goes to
// webErr.
func (b *backend) startWeb(ctx context.Context, sessions *signup.Sessions, workers *sync.WaitGroup) (_ *http.Server, webErr <-chan error, _ error) {
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (-listen or $PORT): %w", b.cfg.Listen, err)
	}
	b.url = "http://" + ln.Addr().String()
	if err := b.verifyPushes(); err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	handler, err := b.routes(sessions)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	web := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	failed := make(chan error, 1)
	workers.Go(func() {
		if err := web.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			failed <- err
		}
	})
	return web, failed, nil
}

// waitRunning returns once the processor's Run has started (/readyz asks
// Processor.Health whether it runs), or has already failed (its error is put
// back in receiveErr), or ctx is done.
func (b *backend) waitRunning(ctx context.Context, receiveErr chan error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !b.proc.Health().Running {
		select {
		case err := <-receiveErr:
			receiveErr <- err
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// announce marks the backend ready, logs it and calls the ready hook.
func (b *backend) announce(out io.Writer, ready func(*backend)) {
	cfg := b.cfg
	b.ready.Store(true)
	b.log.Info("serving", "url", b.url, "provider", cfg.ProviderID, b.source(),
		"service", cfg.ServiceName, "store", storeKind(cfg.DatabaseURL), "approval", cfg.Approval)
	if b.emu != nil {
		b.printEmulatorHelp(out)
	}
	if ready != nil {
		ready(b)
	}
}

// shutdown stops in order: not ready, no more messages (the processor
// closed, then the background context), the receive goroutine's and the web
// server's errors, then a last usage flush.
func (b *backend) shutdown(ctx context.Context, stopBackground context.CancelFunc, receiveErr <-chan error, webFailure error) error {
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
