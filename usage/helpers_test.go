package usage_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

var (
	metricRequests = marketplacetest.DefaultServiceName + "/requests"
	metricStorage  = marketplacetest.DefaultServiceName + "/storage_gib"
)

type env struct {
	t      testing.TB
	srv    *marketplacetest.Server
	clock  *marketplacetest.Clock
	ledger ledger.Ledger
	rep    *usage.Reporter
	opts   []configFunc          // the Config of every reporter of the test
	client []option.ClientOption // the Service Control client's options
	table  *vendorTable          // the usage source in the "source" mode, else nil
}

func sqliteLedger(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "ledger.db")
	}
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newEnv starts an emulator and a Reporter on its clock over ledger
// (memstore when nil).
func newEnv(t testing.TB, ledger ledger.Ledger, opts ...configFunc) *env {
	t.Helper()
	srv := marketplacetest.New(t)
	if ledger == nil {
		ledger = memstore.New()
	}
	e := &env{t: t, srv: srv, clock: srv.Clock(), ledger: ledger, client: srv.ClientOptions()}
	e.opts = append([]configFunc{
		withClock(srv.Clock().Now),
		withMetric("requests", usage.Int64),
		withMetric("storage_gib", usage.Int64),
		withRPCTimeout(2 * time.Second),
	}, opts...)
	e.rep = e.newReporter(ledger)
	return e
}

// usageModes are the two ways usage reaches a Reporter; the tests that
// prove nothing is lost or billed twice run in both.
var usageModes = []string{"record", "source"}

// newEnvMode is newEnv where usage comes, by mode, from Record or from a
// vendorTable the reporter reads as its source (WithSource) for "requests".
// The table fails failRate of its calls.
func newEnvMode(t testing.TB, mode string, failRate float64, ledger ledger.Ledger, opts ...configFunc) *env {
	t.Helper()
	if mode == "record" {
		return newEnv(t, ledger, opts...)
	}
	table := &vendorTable{failRate: failRate, rng: rand.New(rand.NewPCG(3, 3))}
	e := newEnv(t, ledger, append(opts, withSource(table, "requests"))...)
	e.table = table
	return e
}

// use records usage at, or writes it to the vendor's table in the "source"
// mode, first moving the clock to at if it is later.
func (e *env) use(c usage.Consumer, metric string, v int64, at time.Time, labels map[string]string) {
	e.t.Helper()
	if e.table == nil {
		e.record(c, metric, v, at, labels)
		return
	}
	if at.After(e.clock.Now()) {
		require.NoError(e.t, e.clock.Set(at))
	}
	e.table.add(c.EntitlementID, metric, v, at, labels)
}

// vendorTable is a vendor's own metering table, in memory: every call of
// its product as a row, summed by window when the reporter asks.
type vendorTable struct {
	mu       sync.Mutex
	rows     []vendorRow
	queries  []usage.SourceQuery
	failRate float64
	rng      *rand.Rand
}

type vendorRow struct {
	entitlement, metric string
	at                  time.Time
	value               int64
	labels              map[string]string
}

func (v *vendorTable) add(entitlement, metric string, value int64, at time.Time, labels map[string]string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rows = append(v.rows, vendorRow{entitlement, metric, at, value, labels})
}

// Totals is the SQL "SELECT metric, labels, SUM(value) ... GROUP BY metric,
// labels" of the table.
func (v *vendorTable) Totals(_ context.Context, q usage.SourceQuery) ([]usage.Total, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.queries = append(v.queries, q)
	if v.failRate > 0 && v.rng.Float64() < v.failRate {
		return nil, errors.New("vendor database: connection reset")
	}
	var out []usage.Total
	for _, r := range v.rows {
		if r.entitlement != q.EntitlementID || r.at.Before(q.Start) || !r.at.Before(q.End) {
			continue
		}
		out = append(out, usage.Total{Metric: r.metric, Int64: r.value, Labels: r.labels}) // duplicates add up
	}
	return out, nil
}

// total is what the table holds for entitlement and metric.
func (v *vendorTable) total(entitlement, metric string) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var n int64
	for _, r := range v.rows {
		if r.entitlement == entitlement && r.metric == metric {
			n += r.value
		}
	}
	return n
}

func (e *env) newReporter(ledger ledger.Ledger, extra ...configFunc) *usage.Reporter {
	e.t.Helper()
	r, err := usage.New(context.Background(), e.srv.ServiceName(), ledger, configOf(append(slices.Clone(e.opts), extra...)...), e.client...)
	require.NoError(e.t, err)
	return r
}

// consumer buys a usage-based entitlement at the emulator and registers it.
func (e *env) consumer(start, end time.Time) usage.Consumer {
	e.t.Helper()
	ctx := context.Background()
	id, err := e.srv.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(e.t, err)
	ent, ok := e.srv.Entitlement(id)
	require.True(e.t, ok)
	require.NotEmpty(e.t, ent.UsageReportingID)
	c := usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID, Start: start, End: end}
	require.NoError(e.t, e.rep.Register(ctx, c))
	return c
}

// record records usage at, first moving the clock to at if it is later (so
// that the usage is not in the future).
func (e *env) record(c usage.Consumer, metric string, v int64, at time.Time, labels map[string]string) {
	e.t.Helper()
	if at.After(e.clock.Now()) {
		require.NoError(e.t, e.clock.Set(at))
	}
	require.NoError(e.t, e.rep.Record(context.Background(), usage.Record{
		EntitlementID: c.EntitlementID, Metric: metric, Int64: v, Time: at, Labels: labels,
	}))
}

func (e *env) flush() {
	e.t.Helper()
	require.NoError(e.t, e.rep.Flush(context.Background()))
}

// drain flushes, advancing the clock by step between flushes, until no
// window is pending or unknown (at most rounds times).
func (e *env) drain(step time.Duration, rounds int) {
	e.t.Helper()
	for range rounds {
		e.flush()
		if len(e.open()) == 0 {
			return
		}
		e.clock.Advance(step)
	}
	e.t.Fatalf("backlog not drained after %d rounds: %d open windows", rounds, len(e.open()))
}

func (e *env) open() []usage.Window {
	e.t.Helper()
	ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{States: []usage.WindowState{usage.StatePending, usage.StateUnknown}})
	require.NoError(e.t, err)
	return ws
}

// billedOnce is what the emulator bills consumerID for metric: every
// operation id once, exact resends deduplicated.
func billedOnce(srv *marketplacetest.Server, consumerID, metric string) int64 {
	return srv.BilledTotal(consumerID, metric)
}

// requireNoDoubleBilling asserts that the emulator's double-billing detector
// is silent: no operationId reused for other usage, no overlapping windows.
// It returns how many exact resends (same id and content, after a lost
// response or a crash) the emulator deduplicated.
func requireNoDoubleBilling(t testing.TB, srv *marketplacetest.Server) int {
	t.Helper()
	require.Empty(t, srv.Violations())
	return len(srv.Resends())
}

// requireContiguous asserts that the consumer's accepted operations cover
// [from, to) without gap or overlap (operations of one window share its
// interval).
func requireContiguous(t testing.TB, srv *marketplacetest.Server, consumerID string, from, to time.Time) {
	t.Helper()
	type iv struct{ s, e time.Time }
	set := map[iv]bool{}
	for _, op := range srv.Reports() {
		if op.ConsumerID == consumerID {
			set[iv{op.Start.UTC(), op.End.UTC()}] = true
		}
	}
	ivs := slices.SortedFunc(maps.Keys(set), func(a, b iv) int { return a.s.Compare(b.s) })
	require.NotEmpty(t, ivs, "no reports for %s", consumerID)
	require.True(t, ivs[0].s.Equal(from), "first window starts %v, want %v", ivs[0].s, from)
	for i := 1; i < len(ivs); i++ {
		require.True(t, ivs[i].s.Equal(ivs[i-1].e), "gap or overlap between %v and %v", ivs[i-1], ivs[i])
		require.LessOrEqual(t, ivs[i].e.Sub(ivs[i].s), time.Hour)
	}
	require.True(t, ivs[len(ivs)-1].e.Equal(to), "last window ends %v, want %v", ivs[len(ivs)-1].e, to)
}

func memLedger() ledger.Ledger { return memstore.New() }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
