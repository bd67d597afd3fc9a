package usage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func TestOperationIDDeterministic(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := usage.OperationID("ent-1", start, []string{"s/b", "s/a"}, "{}")
	assert.Equal(t, a, usage.OperationID("ent-1", start.In(time.FixedZone("x", 3600)), []string{"s/a", "s/b"}, "{}"), "order and zone do not matter")
	assert.NotEqual(t, a, usage.OperationID("ent-2", start, []string{"s/a", "s/b"}, "{}"))
	assert.NotEqual(t, a, usage.OperationID("ent-1", start.Add(time.Hour), []string{"s/a", "s/b"}, "{}"))
	assert.NotEqual(t, a, usage.OperationID("ent-1", start, []string{"s/a"}, "{}"))
	assert.NotEqual(t, a, usage.OperationID("ent-1", start, []string{"s/a", "s/b"}, `{"k":"v"}`))
	assert.Equal(t, byte('5'), a[14], "UUID version 5")
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct{ start, end, want string }{
		{"2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z"}, // one hour after the end
		// Last hour of January in Pacific time (PST): 1 AM PST Feb 1 = 09:00 UTC.
		{"2026-02-01T07:00:00Z", "2026-02-01T08:00:00Z", "2026-02-01T09:00:00Z"},
		// Last hour of September (PDT): 1 AM PDT Oct 1 = 08:00 UTC; the hour rule binds first.
		{"2026-10-01T06:00:00Z", "2026-10-01T07:00:00Z", "2026-10-01T08:00:00Z"},
		// Last hour of October, cutoff 1 AM PDT Nov 1 (08:00 UTC).
		{"2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"},
		// Last hour of November, cutoff 1 AM PST Dec 1 (09:00 UTC).
		{"2026-12-01T07:00:00Z", "2026-12-01T08:00:00Z", "2026-12-01T09:00:00Z"},
		// A long final window whose hour rule would cross the cutoff.
		{"2026-03-01T07:30:00Z", "2026-03-01T08:30:00Z", "2026-03-01T09:00:00Z"},
	}
	for _, c := range cases {
		assert.Equal(t, utc(c.want), usage.Deadline(utc(c.start), utc(c.end)), "window %s–%s", c.start, c.end)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for name, opts := range map[string][]configFunc{
		"window": {withWindow(7 * time.Minute)},
		"ttl":    {withCheckCacheTTL(2 * time.Minute)},
		"bytes":  {withMaxRequestBytes(2 << 20)},
		"kind":   {withMetric("x", usage.MetricKind(9))},
		"checks": {withMaxChecksPerFlush(-1)},
		"lease":  {withLease(time.Second)},
		"source": {withSource(nil, "requests")},
		"source metric": {withSource(usage.SourceFunc(func(context.Context, usage.SourceQuery) ([]usage.Total, error) {
			return nil, nil
		}), "undeclared")},
	} {
		_, err := usage.New(t.Context(), e.srv.ServiceName(), e.ledger, configOf(append(e.opts, opts...)...), e.client...)
		assert.ErrorIs(t, err, usage.ErrInvalid, name)
	}
	_, err := usage.New(t.Context(), e.srv.ServiceName(), e.ledger, nil, e.client...)
	assert.ErrorIs(t, err, usage.ErrInvalid, "no metric")
	_, err = usage.New(t.Context(), "", e.ledger, configOf(e.opts...), e.client...)
	assert.ErrorIs(t, err, usage.ErrInvalid, "no service")
}

// FuzzRecordLabels: label validation never panics, and labels it accepts
// are reported to the emulator unchanged.
func FuzzRecordLabels(f *testing.F) {
	for _, seed := range [][2]string{
		{"env", "prod"}, {usage.LabelResourceName, "cache-1"}, {"Env", "x"}, {"ключ", "значение"},
		{"a", strings.Repeat("b", 63)}, {"x/y", "z"}, {"", ""}, {"k", "\xff"}, {"k", "a b"},
	} {
		f.Add(seed[0], seed[1])
	}
	e := newEnv(f, nil)
	c := e.consumer(time.Time{}, time.Time{})
	f.Fuzz(func(t *testing.T, k, v string) {
		err := e.rep.Record(t.Context(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{k: v}})
		if err != nil {
			assert.ErrorIs(t, err, usage.ErrInvalid)
			assert.Less(t, len(err.Error()), 400, "errors keep customer data short")
		}
	})
}
