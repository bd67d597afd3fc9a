package chaos

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

var (
	flagSeed      = flag.Uint64("chaos.seed", 0, "seed of TestChaos (0: a new seed every run, printed)")
	flagCustomers = flag.Int("chaos.customers", 0, "customers in TestChaos (default 1000; 5000 with -chaos.long)")
	flagRounds    = flag.Int("chaos.rounds", 0, "lifecycle rounds in TestChaos (default 12; 30 with -chaos.long)")
	flagLong      = flag.Bool("chaos.long", false, "run TestChaos at its long, on-demand size")
)

func flagConfig() config {
	cfg := config{
		seed:      *flagSeed,
		customers: 1000,
		rounds:    12,
		workers:   8,
		step:      20 * time.Minute,
		faults:    true,
		restarts:  0.15,
		broken:    intact,
	}
	if *flagLong {
		cfg.customers, cfg.rounds = 5000, 30
	}
	if *flagCustomers > 0 {
		cfg.customers = *flagCustomers
	}
	if *flagRounds > 0 {
		cfg.rounds = *flagRounds
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano())%1_000_000_000 + 1
	}
	return cfg
}

// TestChaos runs the whole lifecycle of cfg.customers customers with every
// fault on and restarts between commit and acknowledgement, then checks
// that no event was lost, every callback fired exactly once per logical
// change, no usage was lost or billed twice, and local state equals
// Google's. See the package documentation.
func TestChaos(t *testing.T) {
	t.Parallel()
	cfg := flagConfig()
	t.Logf("seed %d: %d customers, %d rounds, faults on, restarts; replay with\n\t%s", cfg.seed, cfg.customers, cfg.rounds, cfg.replay())
	start := time.Now()
	e := newEnv(t, cfg)
	run(e)
	violations := e.check()
	e.logStats(time.Since(start))
	if len(violations) > 0 {
		const show = 40
		for i, v := range violations {
			if i == show {
				t.Errorf("... and %d more", len(violations)-show)
				break
			}
			t.Error(v)
		}
		t.Errorf("%d violations with seed %d; replay with\n\t%s", len(violations), cfg.seed, cfg.replay())
	}
}

func (e *env) logStats(took time.Duration) {
	s := &e.stats
	e.rec.mu.Lock()
	callbacks := e.rec.total
	e.rec.mu.Unlock()
	var calls, reports int
	for _, m := range []mt.Method{mt.MethodEntitlementsGet, mt.MethodAccountsGet, mt.MethodEntitlementsApprove,
		mt.MethodEntitlementsApprovePlanChange, mt.MethodEntitlementsRejectPlanChange, mt.MethodEntitlementsReject,
		mt.MethodEntitlementsPatch, mt.MethodAccountsApprove, mt.MethodEntitlementsList, mt.MethodAccountsList,
		mt.MethodServicesCheck, mt.MethodServicesReport} {
		calls += e.srv.Calls(m)
	}
	reports = len(e.srv.Reports())
	e.t.Logf("%v: %d customers, %d rounds, %d actions (%d SDK retries); %d events published, %d deliveries "+
		"(%d duplicates, %d deferred, %d stale, %d slipped a wave, %d nacked, %d acks lost), %d waves, %d restarts (%d reconciled); "+
		"%d callbacks; %d API calls with faults; %d usage records, %d operations accepted (%d flush errors under faults)",
		took.Round(time.Millisecond), e.cfg.customers, e.cfg.rounds, s.actions, s.actionRetries, s.published, s.deliveries,
		s.duplicates, s.deferred, s.stale, s.heldBack, s.nacks, s.ackLost, s.waves, s.restarts, s.reconciles,
		callbacks, calls, s.records, reports, s.flushErrors.Load())
}

// small is the size of the runs that prove the checker has teeth.
func small(seed uint64) config {
	return config{seed: seed, customers: 120, rounds: 8, workers: 8, step: 20 * time.Minute, faults: true, restarts: 0.15}
}

// requireDetected runs the small scenario with a broken variant and
// requires the checker to report a violation containing want.
func requireDetected(t *testing.T, b breakage, want string) {
	t.Helper()
	cfg := small(42)
	cfg.broken = b
	e := newEnv(t, cfg)
	run(e)
	violations := e.check()
	require.NotEmpty(t, violations, "the checker missed the broken variant")
	found := false
	for _, v := range violations {
		found = found || strings.Contains(v, want)
	}
	assert.True(t, found, "no violation mentions %q; got %d, first: %s", want, len(violations), violations[0])
	t.Logf("%d violations, e.g. %s", len(violations), violations[0])
}

// The small scenario passes when nothing is broken, so what the teeth
// tests see comes from the breakage.
func TestChaosSmallIntact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, small(42))
	run(e)
	require.Empty(t, e.check())
}

// A processor whose commits are dropped while the message is acknowledged
// (ack before commit) repeats callbacks and ends out of sync.
func TestChaosDetectsAckBeforeCommit(t *testing.T) {
	t.Parallel()
	requireDetected(t, brokenDropCommit, "callback")
}

// A store that forgets processed event ids lets duplicates run their
// once-per-event callbacks again.
func TestChaosDetectsSkippedDedupe(t *testing.T) {
	t.Parallel()
	requireDetected(t, brokenSkipDedupe, "callback")
}

// A ledger that acknowledges records it does not keep loses usage.
func TestChaosDetectsLostUsage(t *testing.T) {
	t.Parallel()
	requireDetected(t, brokenLoseUsage, "usage lost")
}
