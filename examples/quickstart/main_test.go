package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The quickstart plays the whole lifecycle and exits cleanly: this is the
// README's first command, run in-process so that it never rots.
func TestQuickstartLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	began := time.Now()
	err := run(ctx, []string{"-metrics"}, &out)
	require.NoError(t, err, out.String())
	t.Logf("quickstart took %s", time.Since(began))
	// -metrics: durations are in seconds with second-scale buckets, so
	// they spread over several (with the SDK's default millisecond
	// buckets, all fell in the first).
	for _, name := range []string{"gcpmarketplace_events_duration_seconds", "gcpmarketplace_procurement_duration_seconds"} {
		buckets := populatedBuckets(t, out.String(), name)
		t.Logf("%s: observations per bucket (upper bound): %v", name, buckets)
		assert.GreaterOrEqual(t, len(buckets), 2, name)
	}
	got := out.String()
	for _, want := range []string{
		"PURCHASE", "parked until the account signs up",
		"SIGN-UP", "token verified", "approval \"signup\" is APPROVED",
		"ENTITLEMENT_ACTIVE received",
		"services.check passed, then services.report accepted 09:00-10:00: 245 requests",
		"services.check passed, then services.report accepted 11:00-12:00: 192 requests",
		"OnEntitlementPlanChangeRequested", "now on plan \"premium\"",
		"OnEntitlementPendingCancellation", "OnEntitlementCancelled",
		"usage after the cancellation is refused",
		"OnAccountDeleted", "customer data purged",
		"13/13 completed",
		"754 requests recorded = 754 reported in 3 hourly operations, 0 double-billed",
		"OK: every step happened.",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "FAILED")
	// The step lines are numbered 1..13 in order.
	last := 0
	for _, line := range strings.Split(got, "\n") {
		if i := strings.Index(line, " ✓ "); i > 0 {
			var n int
			_, err := fmt.Sscan(strings.TrimSpace(line[10:i]), &n)
			require.NoError(t, err, line)
			require.Equal(t, last+1, n, line)
			last = n
		}
	}
	assert.Equal(t, 13, last)
}

// A step that cannot happen fails the run with an error that names it
// instead of hanging.
func TestQuickstartFailsOnTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-step-timeout", "1ns"}, &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "FAILED after")
}

func TestQuickstartBadFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-nope"}, &out))
}

// populatedBuckets reads the histogram name in Prometheus text and returns
// its buckets (upper bounds) that received observations, all series summed.
func populatedBuckets(t *testing.T, text, name string) map[string]uint64 {
	t.Helper()
	line := regexp.MustCompile(`^` + name + `_bucket\{(.*)le="([^"]+)"\} (\d+)$`)
	perBucket := map[string]uint64{}
	prev := map[string]uint64{} // by series: cumulative count so far
	for _, l := range strings.Split(text, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, err := strconv.ParseUint(m[3], 10, 64)
		require.NoError(t, err)
		if n > prev[m[1]] {
			perBucket[m[2]] += n - prev[m[1]]
		}
		prev[m[1]] = n
	}
	require.NotEmpty(t, prev, "no %s histogram in the output", name)
	return perBucket
}
