//go:build unix

// Package replicatest runs the SDK as several real OS processes sharing one
// Pub/Sub subscription and one PostgreSQL database; one of them kills itself
// with SIGKILL between an approval and its commit, and is restarted.
package replicatest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// envURL names the database, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const envURL = "GCPMARKETPLACE_TEST_POSTGRES_URL"

// The child's configuration, passed in its environment.
const (
	envRole      = "REPLICATEST_ROLE" // "child" in a replica
	envName      = "REPLICATEST_NAME"
	envHTTP      = "REPLICATEST_HTTP"
	envPubSub    = "REPLICATEST_PUBSUB"
	envProvider  = "REPLICATEST_PROVIDER"
	envSub       = "REPLICATEST_SUBSCRIPTION"
	envSchema    = "REPLICATEST_SCHEMA"
	envAppSchema = "REPLICATEST_APP_SCHEMA"
	// envKillAt, given to the victim's first incarnation only, is the
	// approval in whose callback it kills itself (see app.killAt).
	envKillAt = "REPLICATEST_KILL_AT"
)

const (
	customers = 500
	replicas  = 3
	// Per replica: at most childConcurrency messages in flight (flow
	// control), pulled over childStreams streams (pstest delivers about a
	// hundred messages per second per stream).
	childConcurrency = 4
	childStreams     = 4
	// A processor holds two connections per message in flight (its key
	// lock and its transaction): pgstore asks for pool_max_conns of at
	// least twice the concurrency. Three replicas (10 each, and 3 for the
	// app), the parent (12) and its app (4) hold at most 55 connections,
	// so that the test passes beside the other packages' tests and other
	// clients of a server at PostgreSQL's default 100 (pgstore.Open
	// refuses a pool the server has no room for).
	childPoolConns  = 2*childConcurrency + 2
	parentSignups   = 4 // sign-ups completed at once by the parent
	parentPoolConns = 2*parentSignups + 4
	// killAtApproval is when the victim kills itself: in the first callback
	// that follows its 20th approval of a new entitlement (of the ~80 it
	// makes in phase 1), after Google approved it and before the commit,
	// with other messages in flight.
	killAtApproval = 20
	victim         = "replica-2"
	unitsActive    = 7  // recorded by OnEntitlementActive
	unitsPlan      = 11 // recorded by OnEntitlementPlanChanged
	metricName     = "requests"
)

var metricFull = marketplacetest.DefaultServiceName + "/" + metricName

// policy approves everything but the plan "forbidden".
var policy = marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
	if r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == "forbidden" {
		return marketplace.Decision{Outcome: marketplace.OutcomeRejected, Reason: "plan not sold any more"}, nil
	}
	return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
})

// app is the vendor's application: an idempotent handler that keeps one row
// per logical change (resource, callback, state reached, plan) and counts
// how often it was invoked for it, and records usage when a customer is
// provisioned or changes plan.
type app struct {
	pool     *pgxpool.Pool
	table    string
	reporter *usage.Reporter
	now      func() time.Time  // the emulator's clock
	emit     func(line string) // CB, REC and KILL lines

	// killAt > 0 makes the process SIGKILL itself on entering the first
	// callback for the entitlement of its killAt-th approval, after Google
	// confirmed the approval and before the processor commits: a death
	// there must not lose the request's OnEntitlementCreationRequested.
	killAt   int
	approved *approvals
}

// approvals is the transport of a replica's Procurement client: it numbers
// the entitlements whose approval Google has confirmed, in order.
type approvals struct {
	next http.RoundTripper
	n    atomic.Int64
	ids  sync.Map // entitlement id → its number
}

func (a *approvals) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || resp.StatusCode >= 300 {
		return resp, err
	}
	if name, ok := strings.CutSuffix(req.URL.Path, ":approve"); ok {
		if _, id, ok := strings.Cut(name, "/entitlements/"); ok {
			a.ids.LoadOrStore(id, a.n.Add(1))
		}
	}
	return resp, err
}

// number is the order in which the entitlement was approved here, 0 if it
// was not.
func (a *approvals) number(id string) int64 {
	if a == nil {
		return 0
	}
	n, _ := a.ids.Load(id)
	v, _ := n.(int64)
	return v
}

func (a *app) handler(replica string) marketplace.Handler {
	return marketplace.HandlerFunc(func(ctx context.Context, c *marketplace.Change) error {
		typ, res := string(c.Type), testenv.ResourceOf(c).ID
		if a.killAt > 0 && a.approved.number(res) == int64(a.killAt) {
			a.emit(fmt.Sprintf("KILL %s %s %s", replica, res, typ))
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // the signal is on its way; do nothing more
		}
		var state, plan string
		ent := c.Entitlement
		if ent != nil {
			state, plan = string(ent.State), ent.Plan
		}
		_, err := a.pool.Exec(ctx, `INSERT INTO `+a.table+` AS c (resource, callback, state, plan, invocations)
			VALUES ($1, $2, $3, $4, 1)
			ON CONFLICT (resource, callback, state, plan) DO UPDATE SET invocations = c.invocations + 1`,
			res, typ, state, plan)
		if err != nil {
			return fmt.Errorf("app: recording %s for %s: %w", typ, res, err)
		}
		var eventID string
		if c.Trigger != nil {
			eventID = c.Trigger.ID()
		}
		a.emit(fmt.Sprintf("CB %s %s %s %s %s %s", replica, res, typ, state, plan, eventID))
		units := int64(0)
		switch c.Type {
		case events.TypeEntitlementActive:
			units = unitsActive
		case events.TypeEntitlementPlanChanged:
			units = unitsPlan
		}
		if units == 0 || ent == nil || ent.UsageReportingID == "" {
			return nil
		}
		// The emulator stamps createTime a few microseconds after its
		// clock's reading; usage starts once the clock has passed it.
		for !a.now().After(ent.CreateTime) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
		if err := a.reporter.Record(ctx, usage.Record{EntitlementID: res, Metric: metricName, Int64: units}); err != nil {
			a.emit(fmt.Sprintf("RECERR %s %s %v", replica, res, err))
			return err
		}
		a.emit(fmt.Sprintf("REC %s %s %d", replica, res, units))
		return nil
	})
}

func newReporter(t testing.TB, l ledger.Ledger, httpURL, owner string, now func() time.Time) *usage.Reporter {
	t.Helper()
	r, err := usage.New(context.Background(), marketplacetest.DefaultServiceName, l, &usage.Config{
		Runtime:       gcpmarketplace.Runtime{Clock: now},
		Metrics:       map[string]usage.MetricKind{metricName: usage.Int64},
		FlushInterval: 200 * time.Millisecond,
		Owner:         owner,
	}, option.WithEndpoint(httpURL+"/"), option.WithHTTPClient(&http.Client{Transport: marketplacetest.AuthTransport(nil)}))
	require.NoError(t, err)
	return r
}

// newProcurement returns a client of the emulator; rt, if not nil, is its
// HTTP transport.
func newProcurement(t testing.TB, providerID, httpURL string, rt http.RoundTripper) *procurement.Client {
	t.Helper()
	return testenv.ClientAt(t, providerID, httpURL, rt,
		&procurement.Config{Retry: procurement.RetryPolicy{InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}})
}

// emulatorClock reads the emulator's clock over its control API, so that
// every process uses the time the parent sets.
func emulatorClock(httpURL string) func() time.Time {
	client := &http.Client{Timeout: 5 * time.Second}
	return func() time.Time {
		for attempt := 0; ; attempt++ {
			t, err := readClock(client, httpURL)
			if err == nil {
				return t
			}
			if attempt == 20 {
				panic(fmt.Sprintf("reading the emulator clock: %v", err))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func readClock(client *http.Client, httpURL string) (time.Time, error) {
	resp, err := client.Get(httpURL + "/control/clock")
	if err != nil {
		return time.Time{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct{ Now string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, body.Now)
}

// TestReplicaChild is one replica; it does nothing in a normal run. It
// processes the subscription until its stdin is closed.
func TestReplicaChild(t *testing.T) {
	if os.Getenv(envRole) != "child" {
		t.Skip("only runs as a replica of TestReplicasShareSubscriptionAndDatabase")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	name, httpURL := os.Getenv(envName), os.Getenv(envHTTP)
	store, err := pgstore.Open(ctx, testenv.WithPoolSize(os.Getenv(envURL), childPoolConns), pgstore.WithSchema(os.Getenv(envSchema)))
	require.NoError(t, err)
	defer func() { _ = store.Close() }()
	pool, err := pgxpool.New(ctx, testenv.WithPoolSize(os.Getenv(envURL), 3))
	require.NoError(t, err)
	defer pool.Close()

	var outMu sync.Mutex
	emit := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = fmt.Fprintln(os.Stdout, line)
	}
	now := emulatorClock(httpURL)
	reporter := newReporter(t, store, httpURL, fmt.Sprintf("%s-%d", name, os.Getpid()), now)
	a := &app{pool: pool, table: os.Getenv(envAppSchema) + ".callbacks", reporter: reporter, now: now, emit: emit}
	var transport http.RoundTripper
	if v := os.Getenv(envKillAt); v != "" {
		a.killAt, err = strconv.Atoi(v)
		require.NoError(t, err)
		a.approved = &approvals{next: http.DefaultTransport}
		transport = a.approved
	}
	proc, err := marketplace.New(store, newProcurement(t, os.Getenv(envProvider), httpURL, transport), a.handler(name),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: now}, Policy: policy, Usage: reporter,
			Concurrency: childConcurrency, ReceiveStreams: childStreams})
	require.NoError(t, err)

	ps, err := pubsub.NewClient(ctx, "vendor-project",
		option.WithEndpoint(os.Getenv(envPubSub)),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled())
	require.NoError(t, err)
	defer func() { _ = ps.Close() }()

	var wg sync.WaitGroup
	wg.Go(func() { _ = reporter.Run(ctx) })
	emit("READY " + name)
	sub := ps.Subscriber(os.Getenv(envSub))
	// Keep lease extensions at Pub/Sub's 10 s minimum, so that what a killed
	// replica held is redelivered ~10 s later rather than after a minute.
	sub.ReceiveSettings.MaxDurationPerAckExtension = 10 * time.Second
	err = proc.Run(ctx, sub)
	cancel()
	wg.Wait()
	require.NoError(t, err)
}

// replica is a running child process.
type replica struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed once it has exited (cmd.Wait returned)
	err   error         // cmd.Wait's, once done
}

// lines collects the CB/REC lines of every process.
type lines struct {
	mu    sync.Mutex
	all   []string
	bad   []string // RECERR and ERROR lines
	kills []string // KILL lines: a replica about to kill itself
}

func (l *lines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case strings.HasPrefix(line, "CB "), strings.HasPrefix(line, "REC "):
		l.all = append(l.all, line)
	case strings.HasPrefix(line, "KILL "):
		l.kills = append(l.kills, line)
	case strings.HasPrefix(line, "RECERR "), strings.Contains(line, "--- FAIL"), strings.Contains(line, "panic:"):
		l.bad = append(l.bad, line)
	}
}

func (l *lines) snapshot() (all, bad []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...), append([]string(nil), l.bad...)
}

func (l *lines) killLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.kills...)
}

type harness struct {
	t        *testing.T
	srv      *marketplacetest.Server
	pgURL    string
	schema   string
	appTable string
	out      *lines
	exited   chan *replica // replicas that exited while running
	mu       sync.Mutex
	running  map[string]*replica
	// killed is the KILL line of the victim, once its death was seen.
	killed string
}

// start runs a replica with env added to its environment.
func (h *harness) start(name string, env ...string) {
	h.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envRole+"=child", envName+"="+name, envHTTP+"="+h.srv.URL(), envPubSub+"="+h.srv.PubSubAddr(),
		envProvider+"="+h.srv.ProviderID(), envSub+"="+h.srv.Subscription(), envURL+"="+h.pgURL,
		envSchema+"="+h.schema, envAppSchema+"="+strings.TrimSuffix(h.appTable, ".callbacks"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(h.t, err)
	stdin, err := cmd.StdinPipe()
	require.NoError(h.t, err)
	require.NoError(h.t, cmd.Start())
	r := &replica{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	h.mu.Lock()
	h.running[name] = r
	h.mu.Unlock()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled && strings.HasPrefix(line, "READY ") {
				signalled = true
				close(ready)
				continue
			}
			h.out.add(line)
		}
		if !signalled {
			close(ready)
		}
		r.err = cmd.Wait() // after the last read of stdout, as Wait requires
		close(r.done)
		h.mu.Lock()
		died := h.running[name] == r // not stopped by stopAll
		if died {
			delete(h.running, name)
		}
		h.mu.Unlock()
		if died {
			h.exited <- r
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		h.t.Fatalf("%s did not start", name)
	}
}

// restart handles the exit of a replica that was running: only the victim
// may die, by its own SIGKILL after its KILL line; it is then started again,
// without the order to die.
func (h *harness) restart(r *replica) {
	h.t.Helper()
	kills := h.out.killLines()
	ws, _ := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if r.name != victim || len(kills) != 1 || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		h.t.Fatalf("%s exited unexpectedly (%v; KILL lines %q)", r.name, r.err, kills)
	}
	h.killed = kills[0]
	h.t.Logf("%s died of its own SIGKILL (%v) in the first callback after one of its approvals, before the commit: %q; restarting it",
		r.name, r.err, kills[0])
	// The request's callback ran, and was committed, before the approval.
	require.Equal(h.t, string(events.TypeEntitlementActive), strings.Fields(kills[0])[3], "the callback the victim died in")
	h.start(r.name)
}

// stopAll closes every replica's stdin and waits for a clean exit.
func (h *harness) stopAll() {
	h.mu.Lock()
	rs := h.running
	h.running = map[string]*replica{}
	h.mu.Unlock()
	for _, r := range rs {
		_ = r.stdin.Close()
	}
	for _, r := range rs {
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		assert.NoError(h.t, r.err, "%s exit", r.name)
	}
}

// acked counts the messages acknowledged at least once, and all messages.
func (h *harness) acked() (acked, total int) {
	for _, m := range h.srv.PubSub().Messages() {
		total++
		if m.Acks > 0 {
			acked++
		}
	}
	return acked, total
}

// settle waits until every published message is acknowledged, restarting
// the victim when it has killed itself.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case r := <-h.exited:
			h.restart(r)
		default:
		}
		acked, total := h.acked()
		if total > 0 && acked == total {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("not settled: %d of %d messages acknowledged", acked, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicasShareSubscriptionAndDatabase: three replicas (OS processes)
// on one subscription and one database run a 500-customer lifecycle with
// usage; one kills itself with SIGKILL between one of its approvals and the
// commit that follows, and is restarted. Every logical change reaches the
// app exactly once, no usage is lost or billed twice, and the final local
// state equals the emulator's.
func TestReplicasShareSubscriptionAndDatabase(t *testing.T) {
	pgURL := testenv.PostgresURL(t)
	began := time.Now()
	ctx := context.Background()
	suffix := testenv.RandomSuffix(t)
	schema, appSchema := "replicatest_"+suffix, "replicatest_app_"+suffix
	pool, err := pgxpool.New(ctx, testenv.WithPoolSize(pgURL, 4))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+appSchema+" CASCADE")
		pool.Close()
	})
	_, err = pool.Exec(ctx, "CREATE SCHEMA "+appSchema+"; CREATE TABLE "+appSchema+`.callbacks (
		resource text NOT NULL, callback text NOT NULL, state text NOT NULL, plan text NOT NULL,
		invocations bigint NOT NULL, PRIMARY KEY (resource, callback, state, plan))`)
	require.NoError(t, err)

	srv := marketplacetest.New(t)
	store, err := pgstore.Open(ctx, testenv.WithPoolSize(pgURL, parentPoolConns), pgstore.WithSchema(schema)) // migrates before the replicas start
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })

	out := &lines{}
	h := &harness{t: t, srv: srv, pgURL: pgURL, schema: schema, appTable: appSchema + ".callbacks",
		out: out, running: map[string]*replica{}, exited: make(chan *replica, replicas+1)}
	t.Cleanup(func() {
		h.mu.Lock()
		var rs []*replica
		for _, r := range h.running { // only after a failure: stopAll empties it
			rs = append(rs, r)
		}
		h.mu.Unlock()
		for _, r := range rs {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})

	// The parent is a fourth instance that only completes sign-ups (the
	// sign-up page's backend), with the same app and the same ledger.
	clock := srv.Clock()
	parentReporter := newReporter(t, store, srv.URL(), "parent", clock.Now)
	parentApp := &app{pool: pool, table: h.appTable, reporter: parentReporter, now: clock.Now, emit: out.add}
	proc, err := marketplace.New(store, newProcurement(t, srv.ProviderID(), srv.URL(), nil), parentApp.handler("parent"),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: clock.Now}, Policy: policy, Usage: parentReporter,
			Concurrency: parentSignups}) // no Run: only its sign-ups need connections
	require.NoError(t, err)

	// The emulator's clock runs at ten times real speed, so that usage
	// recorded as customers are provisioned falls after their creation.
	stopTicking := make(chan struct{})
	var ticking sync.WaitGroup
	ticking.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopTicking:
				return
			case <-tick.C:
				clock.Advance(100 * time.Millisecond)
			}
		}
	})
	defer func() {
		close(stopTicking)
		ticking.Wait()
	}()

	for i := range replicas {
		name := fmt.Sprintf("replica-%d", i+1)
		if name == victim {
			h.start(name, envKillAt+"="+strconv.Itoa(killAtApproval))
		} else {
			h.start(name)
		}
	}

	want := map[string]int{} // "CALLBACK resource" → 1
	expect := func(typ events.Type, id string) { want[string(typ)+" "+id]++ }
	type customer struct{ acct, ent, consumer string }
	cs := make([]customer, customers)
	settle := h.settle
	signup := func(acct string) error {
		_, err := proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant-" + acct[:8], UserIdentity: "uid"})
		return err
	}
	// parallel runs f for every customer on a few goroutines, as the
	// sign-up pages of a busy vendor would.
	parallel := func(f func(i int) error) {
		var wg sync.WaitGroup
		next := make(chan int)
		errs := make(chan error, len(cs))
		for range parentSignups {
			wg.Go(func() {
				for i := range next {
					if err := f(i); err != nil {
						errs <- fmt.Errorf("customer %d: %w", i, err)
					}
				}
			})
		}
		for i := range cs {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	purchase := func(i int, acct string) error {
		id, err := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: acct, Plan: "standard", OfferDuration: "P1M", UsageBased: true})
		if err != nil {
			return err
		}
		e, ok := srv.Entitlement(id)
		if !ok {
			return fmt.Errorf("entitlement %s not found after its purchase", id)
		}
		cs[i] = customer{e.AccountID, id, e.UsageReportingID}
		return nil
	}

	// Phase 1. Odd customers sign up first, then buy: a replica approves
	// and provisions. Even customers buy first: parked until sign-up.
	parallel(func(i int) error {
		if i%2 == 0 {
			return purchase(i, "")
		}
		acct, err := srv.CreateAccount(ctx)
		if err != nil {
			return err
		}
		if err := signup(acct); err != nil {
			return err
		}
		return purchase(i, acct)
	})
	for _, c := range cs {
		expect(events.TypeAccountActive, c.acct)
		expect(events.TypeEntitlementCreationRequested, c.ent)
		expect(events.TypeEntitlementActive, c.ent)
	}
	clock.Advance(time.Minute)
	settle()
	// Phase 2: the even customers sign up; their entitlements are approved
	// and provisioned by the parent's CompleteSignup.
	parallel(func(i int) error {
		if i%2 == 0 {
			return signup(cs[i].acct)
		}
		return nil
	})
	clock.Advance(time.Minute)
	settle()
	// Phase 3.
	for i, c := range cs {
		switch i % 4 {
		case 0:
			require.NoError(t, srv.RequestPlanChange(ctx, c.ent, "premium"))
			expect(events.TypeEntitlementPlanChangeRequested, c.ent)
			expect(events.TypeEntitlementPlanChanged, c.ent)
		case 1:
			require.NoError(t, srv.Cancel(ctx, c.ent, false))
			expect(events.TypeEntitlementPendingCancellation, c.ent)
		case 3:
			require.NoError(t, srv.RequestPlanChange(ctx, c.ent, "forbidden"))
			expect(events.TypeEntitlementPlanChangeRequested, c.ent)
			expect(events.TypeEntitlementPlanChangeCancelled, c.ent)
		}
	}
	clock.Advance(time.Minute)
	settle()
	// Phase 4.
	for i, c := range cs {
		switch i % 4 {
		case 0:
			require.NoError(t, srv.Cancel(ctx, c.ent, true))
			expect(events.TypeEntitlementCancelled, c.ent)
		case 1, 2:
			require.NoError(t, srv.EndTerm(ctx, c.ent))
			if i%4 == 1 {
				expect(events.TypeEntitlementCancelled, c.ent)
			} else {
				expect(events.TypeEntitlementRenewed, c.ent)
			}
		}
	}
	clock.Advance(time.Minute)
	settle()
	// Phase 5.
	for i, c := range cs {
		switch {
		case i%8 == 0:
			require.NoError(t, srv.DeleteAccount(ctx, c.acct))
			expect(events.TypeEntitlementDeleted, c.ent)
			expect(events.TypeAccountDeleted, c.acct)
		case i%4 == 1:
			require.NoError(t, srv.DeleteEntitlement(ctx, c.ent))
			expect(events.TypeEntitlementDeleted, c.ent)
		}
	}
	settle()
	require.NotEmpty(t, h.killed, "the victim never killed itself")
	lifecycleDone := time.Since(began)

	// Usage: close the hour; the replicas' Run loops seal and report it.
	// Wait until everything whose Record returned is billed and nothing is
	// left to report (or the deadline: then the assertions below say what
	// is missing).
	clock.Advance(2 * time.Hour)
	recordedUnits := func() (n int64) {
		all, _ := out.snapshot()
		for _, l := range all {
			if f := strings.Fields(l); f[0] == "REC" {
				v, err := strconv.ParseInt(f[3], 10, 64)
				require.NoError(t, err)
				n += v
			}
		}
		return n
	}()
	billedUnits := func() (n int64) {
		for _, c := range cs {
			n += srv.BilledTotal(c.consumer, metricFull)
		}
		return n
	}
	var backlog []usage.Window
	for deadline := time.Now().Add(60 * time.Second); ; {
		backlog, err = parentReporter.Backlog(ctx)
		require.NoError(t, err)
		if len(backlog) == 0 && billedUnits() >= recordedUnits || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Empty(t, backlog, "usage windows not reported by the replicas")
	reportedByReplicas := len(srv.Reports())
	// Nothing is left for anyone: a flush of the parent finds no work.
	require.NoError(t, parentReporter.Flush(ctx))
	require.Len(t, srv.Reports(), reportedByReplicas, "operations reported by the parent's final flush")
	h.stopAll()

	all, bad := out.snapshot()
	require.Empty(t, bad, "errors reported by the app or a replica")

	// Every logical change reached the app exactly once: one row per
	// (resource, callback) expected, none other.
	rows, err := pool.Query(ctx, "SELECT resource, callback, state, plan, invocations FROM "+h.appTable)
	require.NoError(t, err)
	got := map[string]int{}
	var invocations, distinct int64
	for rows.Next() {
		var res, cb, state, plan string
		var n int64
		require.NoError(t, rows.Scan(&res, &cb, &state, &plan, &n))
		got[cb+" "+res]++
		invocations += n
		distinct++
	}
	require.NoError(t, rows.Err())
	var missing, extra []string
	for k, n := range want {
		if got[k] != n {
			missing = append(missing, fmt.Sprintf("%s: want %d, got %d", k, n, got[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		for _, l := range all {
			for _, m := range append(missing, extra...) {
				if strings.Contains(l, strings.TrimSuffix(strings.Fields(m)[1], ":")) {
					t.Log(l)
					break
				}
			}
		}
	}
	require.Empty(t, missing, "logical changes not seen exactly once by the app")
	require.Empty(t, extra, "callbacks for no expected change")
	// The entitlement whose callback the victim died in: its request was
	// committed before the approval, and its activation redone by another
	// process (or the restart), each reported once.
	killedEnt := strings.Fields(h.killed)[2]
	require.Equal(t, 1, got[string(events.TypeEntitlementCreationRequested)+" "+killedEnt], "request of %s", killedEnt)
	require.Equal(t, 1, got[string(events.TypeEntitlementActive)+" "+killedEnt], "activation of %s", killedEnt)

	// Raw invocations beyond one per change come only from messages the
	// victim was processing when it was killed.
	var cbLines int64
	recorded := map[string]int64{} // entitlement → units whose Record returned
	victimOut := map[string]bool{} // entitlements of the victim's CB lines
	for _, l := range all {
		f := strings.Fields(l)
		switch f[0] {
		case "CB":
			cbLines++
			if f[1] == victim {
				victimOut[f[2]] = true
			}
		case "REC":
			n, err := strconv.ParseInt(f[3], 10, 64)
			require.NoError(t, err)
			recorded[f[2]] += n
		}
	}
	dups := invocations - distinct
	// A callback whose row was written but whose CB line was not yet
	// printed at the kill is an invocation without a line.
	require.GreaterOrEqual(t, invocations, cbLines)
	require.LessOrEqual(t, invocations-cbLines, int64(childConcurrency*3), "invocations without a CB line")
	require.LessOrEqual(t, dups, int64(childConcurrency*3),
		"duplicate invocations exceed what the victim can have had in flight (%d messages × 3 callbacks)", childConcurrency)

	// Usage: nothing lost, nothing billed twice.
	require.Empty(t, srv.Violations(), "double billing")
	var units, billedAll, unprinted int64
	for _, c := range cs {
		billed := srv.BilledTotal(c.consumer, metricFull)
		billedAll += billed
		units += recorded[c.ent]
		if billed < recorded[c.ent] {
			ws, err := store.ListWindows(ctx, ledger.WindowQuery{EntitlementID: c.ent})
			require.NoError(t, err)
			cons, err := store.GetConsumer(ctx, c.ent)
			require.NoError(t, err)
			t.Errorf("usage lost for %s: billed %d, recorded %d; consumer %+v; windows %+v", c.ent, billed, recorded[c.ent], cons, ws)
		}
		if extra := billed - recorded[c.ent]; extra > 0 {
			// A Record that committed but whose REC line the kill cut off.
			unprinted += extra
		}
	}
	require.LessOrEqual(t, unprinted, int64(childConcurrency*unitsPlan), "usage billed beyond the Records seen")
	require.Positive(t, units)

	// Final state: the store equals the emulator.
	type entKey struct{ ID, Account, State, Plan, Pending string }
	var wantEnts, gotEnts []entKey
	for _, x := range srv.Entitlements() {
		wantEnts = append(wantEnts, entKey{x.ID, x.AccountID, x.State, x.Plan, x.NewPendingPlan})
	}
	var accts []marketplace.Account
	require.NoError(t, store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		ents, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		if err != nil {
			return err
		}
		for _, x := range ents {
			gotEnts = append(gotEnts, entKey{x.ID, x.AccountID, string(x.State), x.Plan, x.PendingPlan})
		}
		accts, err = tx.ListAccounts(ctx)
		return err
	}))
	sortKeys := func(ks []entKey) { sort.Slice(ks, func(i, j int) bool { return ks[i].ID < ks[j].ID }) }
	sortKeys(wantEnts)
	sortKeys(gotEnts)
	require.Equal(t, wantEnts, gotEnts, "local entitlements differ from the emulator's")
	var wantAccts, gotAccts []string
	for _, a := range srv.Accounts() {
		wantAccts = append(wantAccts, a.ID)
	}
	for _, a := range accts {
		gotAccts = append(gotAccts, a.ID)
	}
	sort.Strings(wantAccts)
	sort.Strings(gotAccts)
	require.Equal(t, wantAccts, gotAccts, "local accounts differ from the emulator's")

	_, total := h.acked()
	var deliveries int
	for _, m := range srv.PubSub().Messages() {
		deliveries += m.Deliveries
	}
	t.Logf("%d customers, %d messages (%d deliveries), %d replicas + restart; victim killed itself in the activation of %s (%d entitlements in its output)",
		customers, total, deliveries, replicas, killedEnt, len(victimOut))
	t.Logf("%d of %d expected logical changes, %d invocations (%d duplicates from the kill), %d CB lines; %d units recorded, %d billed (%d committed unprinted), %d resends",
		distinct, len(want), invocations, dups, cbLines, units, billedAll, unprinted, len(srv.Resends()))
	t.Logf("%d operations reported by the replicas' Run loops", reportedByReplicas)
	t.Logf("lifecycle %v, total %v", lifecycleDone.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
