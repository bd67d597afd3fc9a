package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// breakage names a deliberately broken variant of the system under test,
// used to prove that the checker notices what it claims to check.
type breakage int

const (
	intact breakage = iota
	// brokenDropCommit: one processor transaction in 20 is rolled back
	// while InTx reports success, as if the message were acknowledged
	// before its commit.
	brokenDropCommit
	// brokenSkipDedupe: the store forgets processed event ids.
	brokenSkipDedupe
	// brokenLoseUsage: one usage record in 50 is acknowledged to Record's
	// caller but never stored.
	brokenLoseUsage
)

// config sizes and shapes one run.
type config struct {
	seed      uint64
	customers int
	rounds    int
	workers   int           // goroutines calling HandleMessage at once
	step      time.Duration // emulator time per round
	faults    bool          // HTTP faults on Procurement and Service Control
	restarts  float64       // probability that a wave ends in a restart
	broken    breakage
}

func (c config) replay() string {
	return fmt.Sprintf("go test ./internal/chaos -run 'TestChaos$' -chaos.seed=%d -chaos.customers=%d -chaos.rounds=%d",
		c.seed, c.customers, c.rounds)
}

// Delivery behaviour of the simulated Pub/Sub.
const (
	duplicateRate = 0.25 // a message is delivered two or three times
	deferRate     = 0.15 // an outdated message's first delivery waits one to three rounds
	holdBackRate  = 0.10 // a delivery slips to the next wave
	ackLossRate   = 0.03 // a processed message's ack is lost: it comes again
	staleRate     = 0.02 // per published message: an old one is delivered again
	crashAckLoss  = 12   // deliveries finished just before a restart whose ack the restart loses
	maxWaves      = 400  // per round: more means a message is never acknowledged
)

// env is one run: the emulator, the SDK under test over a SQLite file that
// survives restarts, the application's recorder and the expectations.
type env struct {
	t      testing.TB
	cfg    config
	ctx    context.Context
	rng    *rand.Rand // the scenario's choices; driver goroutine only
	srv    *marketplacetest.Server
	clock  *marketplacetest.Clock
	client *procurement.Client
	scHTTP *http.Client // the reporter's; timeouts come from its RPC timeout
	dbPath string

	// The process: replaced on every restart.
	db   *sqlitestore.Store
	proc *marketplace.Processor
	rep  *usage.Reporter

	brokenRng *lockedRand // the broken variants' choices

	rec       *recorder
	want      expectations
	feed      feed
	customers []*customer
	usage     usageBook

	mu         sync.Mutex
	violations []string
	stats      stats
}

// stats describe what a run went through; logged at the end.
type stats struct {
	published, deliveries, duplicates, deferred, stale, heldBack int
	nacks, ackLost, restarts, reconciles, waves                  int
	actions, actionRetries, records                              int
	flushErrors                                                  atomic.Int64
}

// lockedRand is a seeded source shared by goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func newEnv(t testing.TB, cfg config) *env {
	t.Helper()
	ctx := context.Background()
	srv := marketplacetest.New(t, marketplacetest.WithSeed(int64(cfg.seed)))
	e := &env{
		t:         t,
		cfg:       cfg,
		ctx:       ctx,
		rng:       rand.New(rand.NewPCG(cfg.seed, 0x5eed)),
		srv:       srv,
		clock:     srv.Clock(),
		dbPath:    filepath.Join(t.TempDir(), "state.db"),
		brokenRng: &lockedRand{r: rand.New(rand.NewPCG(cfg.seed, 0xb40c))},
		rec:       newRecorder(),
		want:      expectations{},
		feed:      newFeed(),
	}
	// Procurement calls give up after callTimeout, so that FaultTimeout
	// (which holds a call for seconds) looks like a network timeout.
	procTransport := &http.Transport{MaxIdleConnsPerHost: 64}
	scTransport := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(procTransport.CloseIdleConnections)
	t.Cleanup(scTransport.CloseIdleConnections)
	e.scHTTP = &http.Client{Transport: marketplacetest.AuthTransport(scTransport)}
	// Ten attempts against ~16% failing calls: a helper practically never
	// gives up, and when it does the message is redelivered.
	e.client = testenv.Client(t, srv,
		&procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 10, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}},
		option.WithHTTPClient(&http.Client{Transport: marketplacetest.AuthTransport(procTransport), Timeout: callTimeout}))
	testenv.SetSleep(e.client, shortSleep)
	e.open()
	t.Cleanup(func() {
		if e.db != nil {
			_ = e.db.Close()
		}
	})
	// Nothing reads the emulator's Pub/Sub subscription (the feed delivers
	// from Published), and pstest rescans every message it holds each
	// 10 ms: without subscriptions, published messages are not kept.
	_, err := srv.PubSub().GServer.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: srv.Subscription()})
	require.NoError(t, err)
	if cfg.faults {
		injectFaults(srv)
	}
	return e
}

// callTimeout bounds one Procurement HTTP call; rpcTimeout one Service
// Control call.
const (
	callTimeout = 200 * time.Millisecond
	rpcTimeout  = 200 * time.Millisecond
)

// injectFaults turns every fault on for every API method for the rest of
// the run (until ClearFaults): about one call in six fails.
func injectFaults(srv *marketplacetest.Server) {
	for _, f := range []marketplacetest.Fault{
		{Kind: marketplacetest.FaultStatus, Status: http.StatusInternalServerError, Rate: 0.03},
		{Kind: marketplacetest.FaultStatus, Status: http.StatusServiceUnavailable, Rate: 0.03},
		{Kind: marketplacetest.FaultRateLimit, RetryAfter: time.Second, Rate: 0.03},
		{Kind: marketplacetest.FaultLatency, Latency: 3 * time.Millisecond, Rate: 0.03},
		{Kind: marketplacetest.FaultTimeout, Latency: 5 * time.Second, Rate: 0.002},
		{Kind: marketplacetest.FaultLostResponse, Rate: 0.04},
	} {
		f.Times = -1
		srv.InjectFault(f)
	}
}

// shortSleep stands in for the Procurement client's backoff: the test
// keeps the retry decisions (how many, on what) but not the waiting, and
// caps a 429's Retry-After (whole seconds) at two milliseconds.
func shortSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(min(d, 2*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// open starts the "process": the SQLite file (reopened after a restart),
// the usage reporter on it and a processor wired to both.
func (e *env) open() {
	e.t.Helper()
	db, err := sqlitestore.Open(e.ctx, e.dbPath, sqlitestore.WithSynchronous(sqlitestore.SyncNormal))
	require.NoError(e.t, err)
	e.db = db
	var store marketplace.Store = db
	var l ledger.Ledger = db
	switch e.cfg.broken {
	case brokenDropCommit:
		store = &dropCommitStore{db: db, rng: e.brokenRng}
	case brokenSkipDedupe:
		store = &forgetfulStore{db: db}
	case brokenLoseUsage:
		l = &lossyLedger{Store: db, rng: e.brokenRng}
	}
	rep, err := usage.New(e.ctx, e.srv.ServiceName(), l, &usage.Config{
		Runtime:         gcpmarketplace.Runtime{Clock: e.clock.Now},
		Metrics:         map[string]usage.MetricKind{metricRequests: usage.Int64, metricStorage: usage.Int64},
		RPCTimeout:      rpcTimeout,
		MaxRequestBytes: 64 << 10, // several report calls per flush
	}, option.WithEndpoint(e.srv.URL()+"/"), option.WithoutAuthentication(), option.WithHTTPClient(e.scHTTP))
	require.NoError(e.t, err)
	proc, err := marketplace.New(store, e.client, e.rec.handler(),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: e.clock.Now}, Policy: chaosPolicy, Usage: rep})
	require.NoError(e.t, err)
	e.proc, e.rep = proc, rep
}

// restart ends the process (the caller has stopped every goroutine using
// it) and starts a new one on the same file. Half the time the new process
// reconciles at start-up, as the package documentation recommends.
func (e *env) restart() {
	e.t.Helper()
	require.NoError(e.t, e.db.Close())
	e.open()
	e.stats.restarts++
	if e.rng.Float64() < 0.5 {
		e.stats.reconciles++
		// Errors are expected with faults on: what Reconcile could not
		// settle, the redelivered messages will.
		_, _ = e.proc.Reconcile(e.ctx)
	}
}

// violate records a broken invariant.
func (e *env) violate(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.violations = append(e.violations, fmt.Sprintf(format, args...))
}

// parallel runs fns on the configured number of goroutines.
func (e *env) parallel(fns []func()) {
	work := make(chan func())
	var wg sync.WaitGroup
	for range e.cfg.workers {
		wg.Go(func() {
			for fn := range work {
				fn()
			}
		})
	}
	for _, fn := range fns {
		work <- fn
	}
	close(work)
	wg.Wait()
}
