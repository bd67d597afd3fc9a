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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/promexport"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
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
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

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
	dir, err := os.MkdirTemp("", "gcpmarketplace-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "marketplace.db")
	store, err := sqlitestore.Open(ctx, dbPath, sqlitestore.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("open the store: %w", err)
	}
	defer store.Close()

	client, err := procurement.NewClient(ctx, emu.ProviderID(),
		procurement.WithClientOptions(emu.ClientOptions()...), procurement.WithLogger(logger),
		procurement.WithMeterProvider(meterProvider))
	if err != nil {
		return fmt.Errorf("procurement client: %w", err)
	}
	reporter, err := usage.New(ctx, emu.ServiceName(), store,
		usage.WithMetric(metric, usage.Int64),
		usage.WithClientOptions(emu.ClientOptions()...),
		usage.WithClock(clock.Now),
		usage.WithFlushInterval(10*time.Millisecond), // real time; production keeps the one-minute default
		usage.WithLogger(logger), usage.WithMeterProvider(meterProvider))
	if err != nil {
		return fmt.Errorf("usage reporter: %w", err)
	}

	tl := &timeline{out: out, now: clock.Now, callbacks: map[string]int{}}
	app := newApp(tl)
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
		return fmt.Errorf("processor: %w", err)
	}
	signupRuntime := gcpmarketplace.Runtime{Logger: logger, Clock: clock.Now}
	verifier, err := verify.NewSignupVerifier([]string{emu.ServiceName()}, &verify.Config{
		Runtime:        signupRuntime,
		SignupCertsURL: emu.CertsURL(), // emulator only: production uses Google's URL
	})
	if err != nil {
		return fmt.Errorf("sign-up verifier: %w", err)
	}

	// The sign-up page, on a real loopback HTTP server.
	mux := http.NewServeMux()
	mux.Handle("POST /signup", signup.Handler(verifier, &signup.Config{Runtime: signupRuntime}, app.signupPage(proc)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var workers sync.WaitGroup
	workers.Go(func() { _ = web.Serve(ln) })
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = web.Shutdown(shutdownCtx)
		workers.Wait()
	}()
	signupURL := "http://" + ln.Addr().String() + "/signup"

	// Pull from the Marketplace subscription, and report usage, in the
	// background until the run ends.
	ps, err := pubsub.NewClient(ctx, "vendor-project", emu.PubSubOptions()...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer ps.Close()
	bgCtx, stopBackground := context.WithCancel(ctx)
	receiveErr := make(chan error, 1)
	workers.Go(func() { receiveErr <- proc.Receive(bgCtx, ps.Subscriber(emu.Subscription())) })
	workers.Go(func() { _ = reporter.Run(bgCtx) })
	stopped := false
	stopWorkers := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopBackground()
		return <-receiveErr
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

// ---------------------------------------------------------------------------
// The application: what a vendor writes. Tenants stand for the vendor's own
// user database.

type tenant struct {
	ID, Email, AccountID, EntitlementID, Plan string
	Active                                    bool
}

type app struct {
	events.HandlerDefaults
	tl *timeline

	mu      sync.Mutex
	tenants map[string]*tenant // by tenant id (the VendorUserID linked at sign-up)
	purged  []string
}

func newApp(tl *timeline) *app { return &app{tl: tl, tenants: map[string]*tenant{}} }

// tenantOf finds the tenant of the account the callback is about.
func (a *app) tenantOf(ctx context.Context) *tenant {
	acct, ok := marketplace.LinkedAccountFrom(ctx)
	if !ok || acct.VendorUserID == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tenants[acct.VendorUserID]
}

// signupPage is the page behind the sign-up URL: the token is verified by
// signup.Handler before it runs. A real page would ask the user
// to sign in or create an account first; here the tenant is created at once.
func (a *app) signupPage(proc *marketplace.Processor) func(http.ResponseWriter, *http.Request, verify.SignupClaims) {
	return func(w http.ResponseWriter, r *http.Request, c verify.SignupClaims) {
		t := &tenant{ID: "tenant-" + short(c.AccountID), Email: r.PostFormValue("email"), AccountID: c.AccountID}
		a.mu.Lock()
		a.tenants[t.ID] = t
		a.mu.Unlock()
		a.tl.note("sign-up page", "token verified (sub %s); created %s for %s", short(c.AccountID), t.ID, t.Email)
		res, err := proc.CompleteSignup(r.Context(), marketplace.SignupParams{
			AccountID: c.AccountID, VendorUserID: t.ID, UserIdentity: c.UserIdentity})
		if err != nil {
			http.Error(w, "sign-up could not be completed, please retry", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "Welcome %s: %d subscription(s) set up.\n", t.Email, len(res.Entitlements))
	}
}

func (a *app) OnAccountActive(_ context.Context, e *events.AccountActive) error {
	a.tl.callback("OnAccountActive", "account %s exists at Google; it has not signed up yet", short(e.Account.ID))
	return nil
}

func (a *app) OnEntitlementCreationRequested(ctx context.Context, e *events.EntitlementCreationRequested) error {
	ent, _ := marketplace.EntitlementFrom(ctx)
	a.tl.callback("OnEntitlementCreationRequested", "entitlement %s for plan %q requested", short(e.Entitlement.ID), ent.Plan)
	return nil
}

func (a *app) OnEntitlementActive(ctx context.Context, e *events.EntitlementActive) error {
	ent, _ := marketplace.EntitlementFrom(ctx)
	t := a.tenantOf(ctx)
	if t == nil {
		return fmt.Errorf("no tenant linked to account %s yet", short(ent.AccountID)) // redelivered later
	}
	a.mu.Lock()
	t.EntitlementID, t.Plan, t.Active = ent.ID, ent.Plan, true
	a.mu.Unlock()
	a.tl.callback("OnEntitlementActive", "provisioned %s on plan %q (usage id %s)", t.ID, ent.Plan, ent.UsageReportingID)
	return nil
}

func (a *app) OnEntitlementPlanChangeRequested(ctx context.Context, _ *events.EntitlementPlanChangeRequested) error {
	ent, _ := marketplace.EntitlementFrom(ctx)
	a.tl.callback("OnEntitlementPlanChangeRequested", "customer asks to move from %q to %q", ent.Plan, ent.NewPendingPlan)
	return nil
}

func (a *app) OnEntitlementPlanChanged(ctx context.Context, _ *events.EntitlementPlanChanged) error {
	ent, _ := marketplace.EntitlementFrom(ctx)
	if t := a.tenantOf(ctx); t != nil {
		a.mu.Lock()
		t.Plan = ent.Plan
		a.mu.Unlock()
	}
	a.tl.callback("OnEntitlementPlanChanged", "now on plan %q", ent.Plan)
	return nil
}

func (a *app) OnEntitlementPendingCancellation(ctx context.Context, _ *events.EntitlementPendingCancellation) error {
	ent, _ := marketplace.EntitlementFrom(ctx)
	a.tl.callback("OnEntitlementPendingCancellation", "service continues until the term ends (%s)", ent.OfferEndTime.Format(time.DateOnly))
	return nil
}

func (a *app) OnEntitlementCancelled(ctx context.Context, e *events.EntitlementCancelled) error {
	if t := a.tenantOf(ctx); t != nil {
		a.mu.Lock()
		t.Active = false
		a.mu.Unlock()
	}
	a.tl.callback("OnEntitlementCancelled", "turned the service off for entitlement %s", short(e.Entitlement.ID))
	return nil
}

func (a *app) OnEntitlementDeleted(_ context.Context, e *events.EntitlementDeleted) error {
	a.tl.callback("OnEntitlementDeleted", "entitlement %s deleted at Google", short(e.Entitlement.ID))
	return nil
}

func (a *app) OnAccountDeleted(ctx context.Context, e *events.AccountDeleted) error {
	acct, ok := marketplace.LinkedAccountFrom(ctx)
	if !ok || acct.VendorUserID == "" {
		a.tl.callback("OnAccountDeleted", "account %s was never linked: nothing to purge", short(e.Account.ID))
		return nil
	}
	a.mu.Lock()
	delete(a.tenants, acct.VendorUserID) // idempotent: deleting twice is harmless
	a.purged = append(a.purged, acct.VendorUserID)
	a.mu.Unlock()
	a.tl.callback("OnAccountDeleted", "purged %s and all its data", acct.VendorUserID)
	return nil
}

func (a *app) tenant(id string) (tenant, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tenants[id]
	if !ok {
		return tenant{}, false
	}
	return *t, true
}

func (a *app) wasPurged(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.purged {
		if p == id {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The timeline.

type timeline struct {
	out io.Writer
	now func() time.Time

	mu        sync.Mutex
	steps     int
	callbacks map[string]int
}

func (t *timeline) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "%s  "+format+"\n", append([]any{t.now().Format("15:04:05")}, args...)...)
}

// step announces what the customer, Google or an operator does.
func (t *timeline) step(name, format string, args ...any) {
	t.printf("%-4s %-24s %s", "", strings.ToUpper(name), fmt.Sprintf(format, args...))
}

// done records that a step's outcome was checked.
func (t *timeline) done(format string, args ...any) {
	t.mu.Lock()
	t.steps++
	n := t.steps
	t.mu.Unlock()
	t.printf("%-4s %s", fmt.Sprintf("%2d ✓", n), fmt.Sprintf(format, args...))
}

// callback records what the application saw.
func (t *timeline) callback(name, format string, args ...any) {
	t.mu.Lock()
	t.callbacks[name]++
	t.mu.Unlock()
	t.printf("%-4s   ↳ %-32s %s", "", name, fmt.Sprintf(format, args...))
}

// note records what the application did outside a callback.
func (t *timeline) note(name, format string, args ...any) {
	t.printf("%-4s   ↳ %-32s %s", "", name, fmt.Sprintf(format, args...))
}

func (t *timeline) callbackCount(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.callbacks[name]
}

// ---------------------------------------------------------------------------
// The lifecycle, played as the customer, Google and an operator.

// totalSteps is how many checked steps lifecycle has.
var totalSteps = 10 + len(hourlyUsage)

type driver struct {
	ctx         context.Context
	tl          *timeline
	emu         *marketplacetest.Server
	proc        *marketplace.Processor
	store       *sqlitestore.Store
	reporter    *usage.Reporter
	app         *app
	signupURL   string
	stepTimeout time.Duration

	accountID, entitlementID, tenantID, consumerID string
	recorded                                       int64
	reports                                        []marketplacetest.ReportedOperation
}

// await polls cond until it holds, for at most the step timeout.
func (d *driver) await(what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(d.ctx, d.stepTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not seen within %s", what, d.stepTimeout)
		case <-tick.C:
		}
	}
}

func (d *driver) awaitCallback(name string, n int) error {
	return d.await(name, func() (bool, error) { return d.tl.callbackCount(name) >= n, nil })
}

func (d *driver) localEntitlement() (marketplace.Entitlement, error) {
	var e marketplace.Entitlement
	err := d.store.InTx(d.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		e, err = tx.GetEntitlement(ctx, d.entitlementID)
		return err
	})
	return e, err
}

func (d *driver) lifecycle() error {
	ctx, emu, tl := d.ctx, d.emu, d.tl

	// 1. Purchase.
	tl.step("purchase", "the customer buys plan %q of the usage-based product, monthly term", "standard")
	ent, err := emu.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "standard", UsageBased: true, OfferDuration: "P1M"})
	if err != nil {
		return err
	}
	snap, _ := emu.Entitlement(ent)
	d.entitlementID, d.accountID, d.consumerID = ent, snap.AccountID, snap.UsageReportingID
	if err := d.awaitCallback("OnEntitlementCreationRequested", 1); err != nil {
		return err
	}
	tl.done("Marketplace published the account and ENTITLEMENT_CREATION_REQUESTED; the processor handled both")

	// 2. The entitlement is parked: approving it before the sign-up would
	// fail with Google's "Precondition check failed".
	if err := d.await("entitlement parked", func() (bool, error) {
		e, err := d.localEntitlement()
		if errors.Is(err, marketplace.ErrNotFound) {
			return false, nil
		}
		return e.Parked, err
	}); err != nil {
		return err
	}
	tl.done("entitlement %s parked until the account signs up (state %s)", short(ent), snap.State)

	// 3. Sign-up: Google redirects the buyer's browser to the sign-up URL
	// with a signed JWT in the form field x-gcp-marketplace-token.
	token := emu.SignupToken(d.accountID, emu.ServiceName())
	tl.step("sign-up", "the buyer's browser POSTs a signed JWT (%d bytes) to %s", len(token), d.signupURL)
	form := url.Values{"x-gcp-marketplace-token": {token}, "email": {"ada@example.com"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.signupURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sign-up: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sign-up: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	d.tenantID = "tenant-" + short(d.accountID)
	tl.done("sign-up page answered %s: %s", resp.Status, strings.TrimSpace(string(body)))

	// 4. The account's sign-up approval.
	acct, ok := emu.Account(d.accountID)
	if !ok || len(acct.Approvals) == 0 || acct.Approvals[0].State != marketplacetest.ApprovalApproved {
		return fmt.Errorf("account %s: signup approval not APPROVED at Google", d.accountID)
	}
	tl.done("account %s approved at Google (approval %q is %s), linked to %s",
		short(d.accountID), acct.Approvals[0].Name, acct.Approvals[0].State, d.tenantID)

	// 5. The parked entitlement was approved and is active.
	if err := d.awaitCallback("OnEntitlementActive", 1); err != nil {
		return err
	}
	if snap, _ = emu.Entitlement(ent); snap.State != marketplacetest.StateActive {
		return fmt.Errorf("entitlement %s is %s at Google, want ACTIVE", ent, snap.State)
	}
	if err := d.awaitEventsAcked("ENTITLEMENT_ACTIVE"); err != nil {
		return err
	}
	tl.done("parked entitlement approved; ENTITLEMENT_ACTIVE received; %s provisioned", d.tenantID)

	// 6. Usage, reported hourly: records land in hourly windows in the
	// store; each closed window is checked (services.check) and then
	// reported (services.report) with a deterministic operation id.
	for h, amounts := range hourlyUsage {
		hourStart := d.emu.Clock().Now().Truncate(time.Hour)
		var total int64
		for i, n := range amounts {
			if err := d.emu.Clock().Set(hourStart.Add([]time.Duration{10, 25, 50}[i] * time.Minute)); err != nil {
				return err
			}
			if err := d.reporter.Record(ctx, usage.Record{EntitlementID: ent, Metric: metric, Value: n}); err != nil {
				return fmt.Errorf("record usage: %w", err)
			}
			total += n
		}
		d.recorded += total
		tl.step("usage", "hour %d: %d %s recorded (%v) in the store", h+1, total, metric, amounts)
		checksBefore := emu.CheckCalls(d.consumerID)
		// The hour ends; after the seal grace (one minute) the window is closed.
		if err := emu.Clock().Set(hourStart.Add(time.Hour + usage.DefaultSealGrace + time.Second)); err != nil {
			return err
		}
		// The window ends at the hour; the first one starts when the
		// entitlement was created.
		var op marketplacetest.ReportedOperation
		if err := d.await(fmt.Sprintf("report of hour %d", h+1), func() (bool, error) {
			for _, r := range emu.Reports() {
				if r.ConsumerID == d.consumerID && r.End.Equal(hourStart.Add(time.Hour)) {
					op = r
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return err
		}
		if emu.CheckCalls(d.consumerID) <= checksBefore {
			return fmt.Errorf("hour %d was reported without a services.check first", h+1)
		}
		d.reports = append(d.reports, op)
		tl.done("services.check passed, then services.report accepted %s-%s: %d %s (operation %s)",
			op.Start.Format("15:04"), op.End.Format("15:04"), sumMetric(op), metric, short(op.OperationID))
	}

	// 7. Plan change, held for an operator by the policy.
	tl.step("plan change", "the customer asks for plan %q", "premium")
	if err := emu.RequestPlanChange(ctx, ent, "premium"); err != nil {
		return err
	}
	var queued []marketplace.ApprovalRequest
	if err := d.await("plan change queued", func() (bool, error) {
		var err error
		queued, err = d.proc.PendingApprovals(ctx)
		return len(queued) == 1, err
	}); err != nil {
		return err
	}
	tl.step("operator", "reviews the queue: %s %s -> %q; approves it", queued[0].Kind, short(queued[0].EntitlementID), queued[0].Plan)
	if err := d.proc.Approve(ctx, ent); err != nil {
		return fmt.Errorf("approve plan change: %w", err)
	}
	if err := d.awaitCallback("OnEntitlementPlanChanged", 1); err != nil {
		return err
	}
	if t, _ := d.app.tenant(d.tenantID); t.Plan != "premium" {
		return fmt.Errorf("tenant plan is %q after the plan change, want premium", t.Plan)
	}
	tl.done("plan change approved at Google; %s now on plan %q", d.tenantID, "premium")

	// 8. Cancellation: pending until the term ends, then cancelled.
	tl.step("cancel", "the customer cancels (effective at the end of the term)")
	if err := emu.Cancel(ctx, ent, false); err != nil {
		return err
	}
	if err := d.awaitCallback("OnEntitlementPendingCancellation", 1); err != nil {
		return err
	}
	tl.step("term ends", "Google ends the entitlement's term")
	if err := emu.EndTerm(ctx, ent); err != nil {
		return err
	}
	if err := d.awaitCallback("OnEntitlementCancelled", 1); err != nil {
		return err
	}
	if t, _ := d.app.tenant(d.tenantID); t.Active {
		return fmt.Errorf("%s still active after the cancellation", d.tenantID)
	}
	if err := d.awaitEventsAcked("ENTITLEMENT_CANCELLED"); err != nil {
		return err
	}
	emu.Clock().Advance(time.Minute)
	if err := d.reporter.Record(ctx, usage.Record{EntitlementID: ent, Metric: metric, Value: 1}); !errors.Is(err, usage.ErrAfterEnd) {
		return fmt.Errorf("usage after the cancellation: got %v, want usage.ErrAfterEnd", err)
	}
	tl.done("entitlement cancelled; service turned off; usage after the cancellation is refused")

	// 9. The customer leaves Google Cloud.
	tl.step("account deleted", "the customer's account is deleted at Google")
	if err := emu.DeleteAccount(ctx, d.accountID); err != nil {
		return err
	}
	if err := d.awaitCallback("OnAccountDeleted", 1); err != nil {
		return err
	}
	if err := d.awaitEventsAcked("ACCOUNT_DELETED"); err != nil {
		return err
	}
	tl.done("ACCOUNT_DELETED handled")

	// 10. Purge.
	if _, still := d.app.tenant(d.tenantID); still || !d.app.wasPurged(d.tenantID) {
		return fmt.Errorf("%s was not purged", d.tenantID)
	}
	var accounts []marketplace.Account
	if err := d.store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		accounts, err = tx.ListAccounts(ctx)
		return err
	}); err != nil {
		return err
	}
	if len(accounts) != 0 {
		return fmt.Errorf("%d account(s) left in the store after the purge", len(accounts))
	}
	tl.done("customer data purged: %s deleted, no account left in the store", d.tenantID)

	// 11. Nothing left behind: every message acknowledged, no usage lost
	// or billed twice.
	if err := d.awaitEventsAcked(""); err != nil {
		return err
	}
	billed := emu.BilledTotal(d.consumerID, emu.ServiceName()+"/"+metric)
	if billed != d.recorded {
		return fmt.Errorf("usage billed %d != recorded %d", billed, d.recorded)
	}
	if v := emu.Violations(); len(v) != 0 {
		return fmt.Errorf("double billing: %+v", v)
	}
	backlog, err := d.reporter.Backlog(ctx)
	if err != nil {
		return err
	}
	if len(backlog) != 0 {
		return fmt.Errorf("%d usage window(s) not reported", len(backlog))
	}
	tl.done("every message acknowledged; usage billed = usage recorded; nothing double-billed")
	return nil
}

// awaitEventsAcked waits until every published event of eventType ("" =
// every event) has been acknowledged.
func (d *driver) awaitEventsAcked(eventType string) error {
	what := "all events acknowledged"
	if eventType != "" {
		what = eventType + " acknowledged"
	}
	return d.await(what, func() (bool, error) {
		for _, p := range d.emu.Published() {
			if eventType != "" && p.EventType != eventType {
				continue
			}
			m := d.emu.PubSub().Message(p.MessageID)
			if m == nil || m.Acks == 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

func (d *driver) summary(took time.Duration) error {
	out, emu, tl := d.tl.out, d.emu, d.tl
	published := emu.Published()
	acked := 0
	for _, p := range published {
		if m := emu.PubSub().Message(p.MessageID); m != nil && m.Acks > 0 {
			acked++
		}
	}
	var poison []marketplace.Poison
	if err := d.store.InTx(d.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		poison, err = tx.ListPoison(ctx, 0)
		return err
	}); err != nil {
		return err
	}
	procCalls, procTotal := callCounts(emu, []marketplacetest.Method{
		marketplacetest.MethodAccountsGet, marketplacetest.MethodAccountsList, marketplacetest.MethodAccountsApprove,
		marketplacetest.MethodEntitlementsGet, marketplacetest.MethodEntitlementsList, marketplacetest.MethodEntitlementsApprove,
		marketplacetest.MethodEntitlementsApprovePlanChange, marketplacetest.MethodEntitlementsPatch,
	})
	tl.mu.Lock()
	names := make([]string, 0, len(tl.callbacks))
	for n := range tl.callbacks {
		names = append(names, n)
	}
	sort.Strings(names)
	var cbs []string
	for _, n := range names {
		cbs = append(cbs, fmt.Sprintf("%s %d", n, tl.callbacks[n]))
	}
	steps := tl.steps
	tl.mu.Unlock()

	fmt.Fprintf(out, "\nSummary\n")
	fmt.Fprintf(out, "  steps         %d/%d completed\n", steps, totalSteps)
	fmt.Fprintf(out, "  events        %d published by Marketplace, %d handled and acknowledged, %d poison\n", len(published), acked, len(poison))
	fmt.Fprintf(out, "  callbacks     %s\n", rows(cbs, 3))
	fmt.Fprintf(out, "  API calls     Procurement %d: %s\n", procTotal, rows(procCalls, 4))
	fmt.Fprintf(out, "                Service Control: services.check %d, services.report %d\n",
		emu.Calls(marketplacetest.MethodServicesCheck), emu.Calls(marketplacetest.MethodServicesReport))
	fmt.Fprintf(out, "  usage         %d %s recorded = %d reported in %d hourly operations, %d double-billed\n",
		d.recorded, metric, emu.BilledTotal(d.consumerID, emu.ServiceName()+"/"+metric), len(d.reports), len(emu.Violations()))
	fmt.Fprintf(out, "  took          %s (emulator clock moved %s)\n", took.Round(time.Millisecond),
		emu.Clock().Now().Sub(published[0].At).Round(time.Minute))
	if steps != totalSteps || acked != len(published) || len(poison) != 0 {
		return fmt.Errorf("incomplete run: %d/%d steps, %d/%d events acknowledged, %d poison", steps, totalSteps, acked, len(published), len(poison))
	}
	fmt.Fprintf(out, "\nOK: every step happened.\n")
	return nil
}

// rows joins items with commas, perRow to a line, lines indented to the
// summary's second column.
func rows(items []string, perRow int) string {
	var b strings.Builder
	for i, it := range items {
		switch {
		case i == 0:
		case i%perRow == 0:
			b.WriteString(",\n                ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(it)
	}
	return b.String()
}

func callCounts(emu *marketplacetest.Server, methods []marketplacetest.Method) ([]string, int) {
	var parts []string
	total := 0
	for _, m := range methods {
		if n := emu.Calls(m); n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(string(m), "cloudcommerceprocurement.providers."), n))
		}
	}
	return parts, total
}

func sumMetric(op marketplacetest.ReportedOperation) int64 {
	var n int64
	for _, m := range op.Metrics {
		n += m.Int64
	}
	return n
}

// short shortens an id for display.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
