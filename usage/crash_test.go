package usage_test

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// The crash tests re-execute this test binary as a child that works on a
// SQLite ledger and talks to the emulator running in the parent, kill it
// with SIGKILL at a chosen point, and finish the work in the parent.
const (
	envCrashMode      = "USAGE_CRASH_MODE" // record | after-report | mid-flush
	envCrashDB        = "USAGE_CRASH_DB"
	envCrashURL       = "USAGE_CRASH_URL"
	envCrashNow       = "USAGE_CRASH_NOW"
	envCrashConsumers = "USAGE_CRASH_CONSUMERS" // entitlement=consumer,...
	envCrashUsage     = "USAGE_CRASH_USAGE"     // record | source (usageModes)
)

// crashSource is the vendor's records in the crash tests' "source" mode: a
// pure function of the consumer and the window, so that the parent and the
// child process read the same totals.
var crashSource = usage.SourceFunc(func(_ context.Context, q usage.SourceQuery) ([]usage.Total, error) {
	return []usage.Total{{Metric: "requests", Int64: crashTotal(q.EntitlementID, q.Start)}}, nil
})

func crashTotal(entitlementID string, start time.Time) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(entitlementID + "@" + start.UTC().Format(time.RFC3339Nano)))
	return 100 + int64(h.Sum32()%900)
}

func crashReporter(t testing.TB, mode string, ledger ledger.Ledger, url string, now func() time.Time, extra ...configFunc) *usage.Reporter {
	t.Helper()
	if mode == "source" {
		extra = append(extra, withSource(crashSource, "requests"))
	}
	opts := append([]configFunc{
		withClock(now),
		withMetric("requests", usage.Int64),
		withMetric("storage_gib", usage.Int64),
		withMaxRequestBytes(3000), // many report calls
	}, extra...)
	r, err := usage.New(context.Background(), marketplacetest.DefaultServiceName, ledger, configOf(opts...),
		option.WithEndpoint(url+"/"), option.WithHTTPClient(&http.Client{Transport: marketplacetest.AuthTransport(nil)}))
	require.NoError(t, err)
	return r
}

// TestCrashChild is the child process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(envCrashMode)
	if mode == "" {
		t.Skip("only runs as the child of the crash tests")
	}
	ctx := context.Background()
	now, err := time.Parse(time.RFC3339Nano, os.Getenv(envCrashNow))
	require.NoError(t, err)
	ledger := sqliteLedger(t, os.Getenv(envCrashDB))
	var hook configFunc = withClock(func() time.Time { return now })
	switch mode {
	case "after-report":
		// Stop right after the first report RPC returns, before the
		// ledger records its outcome; the parent kills us there.
		hook = usage.WithAfterReportHook(func() {
			fmt.Println("REPORTED")
			select {}
		})
	case "mid-flush":
		n := 0
		hook = usage.WithAfterReportHook(func() {
			n++
			fmt.Println("REPORT", n) // the parent kills us a few calls in
		})
	}
	r := crashReporter(t, os.Getenv(envCrashUsage), ledger, os.Getenv(envCrashURL), func() time.Time { return now }, hook)
	switch mode {
	case "record":
		var ids []string
		for _, pair := range strings.Split(os.Getenv(envCrashConsumers), ",") {
			ent, _, _ := strings.Cut(pair, "=")
			ids = append(ids, ent)
		}
		for i := 0; ; i++ {
			id := ids[i%len(ids)]
			if err := r.Record(ctx, usage.Record{EntitlementID: id, Metric: "requests", Int64: 1, Time: now.Add(-time.Minute)}); err != nil {
				fmt.Println("ERROR", err)
				os.Exit(4)
			}
			fmt.Println("RECORDED", id)
		}
	default:
		if err := r.Flush(ctx); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(4)
		}
		fmt.Println("FLUSHED")
		select {}
	}
}

type crashSetup struct {
	srv       *marketplacetest.Server
	db        string
	mode      string // usageModes
	consumers []usage.Consumer
}

func newCrashSetup(t *testing.T, mode string, n int) *crashSetup {
	srv := marketplacetest.New(t)
	s := &crashSetup{srv: srv, db: filepath.Join(t.TempDir(), "ledger.db"), mode: mode}
	ledger := sqliteLedger(t, s.db)
	r := crashReporter(t, mode, ledger, srv.URL(), srv.Clock().Now)
	for range n {
		id, err := srv.Purchase(context.Background(), marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
		require.NoError(t, err)
		ent, _ := srv.Entitlement(id)
		c := usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID}
		require.NoError(t, r.Register(context.Background(), c))
		s.consumers = append(s.consumers, c)
	}
	require.NoError(t, ledger.Close())
	return s
}

// runChild starts the child and kills it with SIGKILL once stop returns true
// for a line of its output. It returns the lines read.
func (s *crashSetup) runChild(t *testing.T, mode string, now time.Time, stop func(line string, n int) bool) []string {
	t.Helper()
	var pairs []string
	for _, c := range s.consumers {
		pairs = append(pairs, c.EntitlementID+"="+c.UsageReportingID)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashMode+"="+mode, envCrashDB+"="+s.db, envCrashURL+"="+s.srv.URL(),
		envCrashNow+"="+now.Format(time.RFC3339Nano), envCrashConsumers+"="+strings.Join(pairs, ","), envCrashUsage+"="+s.mode)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	var lines []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERROR") {
			t.Fatalf("child: %s", line)
		}
		lines = append(lines, line)
		if stop(line, len(lines)) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
			// What the child wrote before it died may still be in the
			// pipe: read it to the end, or a record it acknowledged would
			// count as unacknowledged.
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			break
		}
	}
	_ = cmd.Wait()
	require.True(t, killed, "child ended before the crash point; output: %v", lines)
	return lines
}

// finish reopens the ledger after the crash and reports everything left.
func (s *crashSetup) finish(t *testing.T) {
	t.Helper()
	db := sqliteLedger(t, s.db)
	clock := s.srv.Clock()
	r := crashReporter(t, s.mode, db, s.srv.URL(), clock.Now)
	clock.Advance(defaultLease) // the dead child's leases expire
	for range 50 {
		require.NoError(t, r.Flush(context.Background()))
		open, err := db.ListWindows(context.Background(), ledger.WindowQuery{States: []usage.WindowState{usage.StatePending, usage.StateUnknown}})
		require.NoError(t, err)
		if len(open) == 0 {
			return
		}
		clock.Advance(time.Minute)
	}
	t.Fatal("backlog not drained after the crash")
}

// (a) SIGKILL while Record is being called: every Record that returned is
// reported, once.
func TestCrashAfterRecordReturned(t *testing.T) {
	t.Parallel()
	s := newCrashSetup(t, "record", 3) // Record's own durability: no source involved
	t0 := s.srv.Clock().Now()
	s.srv.Clock().Advance(2 * time.Minute)
	lines := s.runChild(t, "record", s.srv.Clock().Now(), func(_ string, n int) bool { return n >= 60 })
	acked := map[string]int64{}
	for _, l := range lines {
		if id, ok := strings.CutPrefix(l, "RECORDED "); ok {
			acked[id]++
		}
	}
	s.srv.Clock().Advance(time.Hour)
	s.finish(t)
	assert.Empty(t, s.srv.Violations())
	var inflight int64
	for _, c := range s.consumers {
		billed := s.srv.BilledTotal(c.UsageReportingID, metricRequests)
		require.GreaterOrEqual(t, billed, acked[c.EntitlementID], "a record that returned was lost")
		inflight += billed - acked[c.EntitlementID]
		requireContiguous(t, s.srv, c.UsageReportingID, t0, t0.Add(time.Hour))
	}
	// At most the one Record in flight at the kill committed without
	// printing.
	assert.LessOrEqual(t, inflight, int64(1))
}

// recordHour fills the first hour of every consumer in the parent, or, with
// a source, lets it pass: the source's totals are what must be billed.
func (s *crashSetup) recordHour(t *testing.T) map[string]int64 {
	ledger := sqliteLedger(t, s.db)
	clock := s.srv.Clock()
	r := crashReporter(t, s.mode, ledger, s.srv.URL(), clock.Now)
	t0 := clock.Now()
	clock.Advance(10 * time.Minute)
	want := map[string]int64{}
	for i, c := range s.consumers {
		if s.mode == "source" {
			want[c.UsageReportingID] = crashTotal(c.EntitlementID, t0)
			continue
		}
		v := int64(100 + i)
		require.NoError(t, r.Record(context.Background(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: v}))
		want[c.UsageReportingID] = v
	}
	require.NoError(t, ledger.Close())
	clock.Advance(time.Hour)
	return want
}

// (b) SIGKILL after the report was sent (and accepted) but before the
// ledger recorded it: the window is Unknown and is resent with the same id.
func TestCrashAfterReportBeforeLedger(t *testing.T) {
	t.Parallel()
	for _, mode := range usageModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testCrashAfterReportBeforeLedger(t, mode)
		})
	}
}

func testCrashAfterReportBeforeLedger(t *testing.T, mode string) {
	s := newCrashSetup(t, mode, 40)
	want := s.recordHour(t)
	s.runChild(t, "after-report", s.srv.Clock().Now(), func(line string, _ int) bool { return line == "REPORTED" })
	acceptedBeforeCrash := len(s.srv.Reports())
	require.Positive(t, acceptedBeforeCrash)
	s.finish(t)
	dups := requireNoDoubleBilling(t, s.srv)
	for _, c := range s.consumers {
		assert.Equal(t, want[c.UsageReportingID], billedOnce(s.srv, c.UsageReportingID, metricRequests))
	}
	// The only duplicates are the operations of the call whose outcome the
	// crash lost: no client can tell them from a failed call.
	assert.Equal(t, acceptedBeforeCrash, dups)
	t.Logf("%d operations accepted before the crash were resent with the same ids", dups)
}

// (c) SIGKILL in the middle of a flush with many report calls.
func TestCrashMidFlush(t *testing.T) {
	t.Parallel()
	for _, mode := range usageModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testCrashMidFlush(t, mode)
		})
	}
}

func testCrashMidFlush(t *testing.T, mode string) {
	s := newCrashSetup(t, mode, 60)
	want := s.recordHour(t)
	s.runChild(t, "mid-flush", s.srv.Clock().Now(), func(line string, _ int) bool { return line == "REPORT "+strconv.Itoa(3) })
	s.finish(t)
	dups := requireNoDoubleBilling(t, s.srv)
	for _, c := range s.consumers {
		assert.Equal(t, want[c.UsageReportingID], billedOnce(s.srv, c.UsageReportingID, metricRequests))
	}
	t.Logf("%d same-id resends after the crash", dups)
}
