package marketplace

import (
	"bytes"
	"context"
	"encoding/base64"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestKeyedMutex(t *testing.T) {
	t.Parallel()
	var k keyedMutex
	ctx := context.Background()
	unlock, err := k.lock(ctx, "a")
	require.NoError(t, err)
	unlockB, err := k.lock(ctx, "b")
	require.NoError(t, err, "other keys are independent")
	unlockB()

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = k.lock(short, "a")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan struct{})
	go func() {
		u, err := k.lock(ctx, "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	unlock() // a second call is harmless
	<-got
	k.mu.Lock()
	defer k.mu.Unlock()
	assert.Empty(t, k.locks, "no lock left behind")
}

func FuzzDecodePush(f *testing.F) {
	f.Add([]byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(`{"eventId":"e"}`)) +
		`","messageId":"1","publishTime":"2026-01-02T03:04:05.123Z"},"subscription":"s","deliveryAttempt":2}`))
	f.Add([]byte(`{"message":{"data":"","message_id":"2","publish_time":"2026-01-02T03:04:05Z"}}`))
	f.Add([]byte(`{"message":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodePush(bytes.NewReader(body))
		if err != nil {
			return
		}
		if len(m.Data) > len(body) {
			t.Fatalf("decoded data longer than the body")
		}
	})
}

type fakeRegistrar struct {
	mu   sync.Mutex
	regs []usageConsumer
}

func (f *fakeRegistrar) register(_ context.Context, c usageConsumer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs = append(f.regs, c)
	return nil
}

func TestRegisterUsage(t *testing.T) {
	t.Parallel()
	f := &fakeRegistrar{}
	p := &Processor{cfg: newConfig(nil)}
	p.cfg.usage = f
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	termEnd := created.AddDate(0, 1, 0)
	cancelled := created.AddDate(0, 0, 10)
	ent := func(s procurement.EntitlementState) *procurement.Entitlement {
		return &procurement.Entitlement{ID: "e", UsageReportingID: "project_number:1", State: s,
			CreateTime: created, OfferEndTime: termEnd, UpdateTime: cancelled}
	}
	ctx := context.Background()
	require.NoError(t, p.registerUsage(ctx, nil, ent(procurement.EntitlementActive), nil))
	require.NoError(t, p.registerUsage(ctx, nil, ent(procurement.EntitlementPendingCancellation), nil))
	wasActive := &Entitlement{ID: "e", UsageReportingID: "project_number:1", State: procurement.EntitlementActive}
	require.NoError(t, p.registerUsage(ctx, wasActive, ent(procurement.EntitlementCancelled), nil))
	require.NoError(t, p.registerUsage(ctx, &Entitlement{ID: "e", UsageReportingID: "project_number:1",
		State: procurement.EntitlementCancelled, CancelTime: cancelled}, nil, nil))
	require.NoError(t, p.registerUsage(ctx, nil, &procurement.Entitlement{ID: "flat", State: procurement.EntitlementActive}, nil))
	// Never usable: waiting for approval, or ended before it ever was.
	require.NoError(t, p.registerUsage(ctx, nil, ent(procurement.EntitlementActivationRequested), nil))
	require.NoError(t, p.registerUsage(ctx, nil, ent(procurement.EntitlementCancelled), nil))
	waiting := &Entitlement{ID: "e", UsageReportingID: "project_number:1", State: procurement.EntitlementActivationRequested}
	require.NoError(t, p.registerUsage(ctx, waiting, ent(procurement.EntitlementCancelled), nil))
	require.NoError(t, p.registerUsage(ctx, waiting, nil, nil))
	// Approved: registered without Start (not createTime, the purchase:
	// usage before the activation is not billable), so the Reporter's
	// windows begin at the registration.
	require.NoError(t, p.registerUsage(ctx, waiting, ent(procurement.EntitlementActive), nil))
	assert.Equal(t, []usageConsumer{
		{EntitlementID: "e", UsageReportingID: "project_number:1"},
		{EntitlementID: "e", UsageReportingID: "project_number:1", End: termEnd},
		{EntitlementID: "e", UsageReportingID: "project_number:1", End: cancelled},
		{EntitlementID: "e", UsageReportingID: "project_number:1", End: cancelled},
		{EntitlementID: "e", UsageReportingID: "project_number:1"},
	}, f.regs)
}

// A cancellation at the term's end first seen as CANCELLED ends at the
// term's end (offerEndTime), not when Google flipped the state
// (updateTime, later); an entitlement found deleted ends when the
// cancellation or deletion message says, not at processing time.
func TestRegisterUsageEarliestEnd(t *testing.T) {
	t.Parallel()
	f := &fakeRegistrar{}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	p := &Processor{cfg: newConfig(nil)}
	p.cfg.now = func() time.Time { return now }
	p.cfg.usage = f
	termEnd := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	flipped := termEnd.Add(40 * time.Minute)
	ctx := context.Background()
	wasActive := &Entitlement{ID: "e", UsageReportingID: "project_number:1", State: procurement.EntitlementActive, UpdateTime: termEnd.AddDate(0, -1, 0)}
	require.NoError(t, p.registerUsage(ctx, wasActive, &procurement.Entitlement{ID: "e", UsageReportingID: "project_number:1",
		State: procurement.EntitlementCancelled, OfferEndTime: termEnd, UpdateTime: flipped}, nil))
	assert.Equal(t, termEnd, toLocal(&procurement.Entitlement{ID: "e", State: procurement.EntitlementCancelled,
		OfferEndTime: termEnd, UpdateTime: flipped}, nil, false, now).CancelTime)

	deletedAt := termEnd.Add(5 * time.Minute)
	msg := &events.EntitlementDeleted{Entitlement: events.Entitlement{ID: "e", UpdateTime: deletedAt}}
	require.NoError(t, p.registerUsage(ctx, wasActive, nil, msg))
	stale := &events.EntitlementCancelled{Entitlement: events.Entitlement{ID: "e", UpdateTime: wasActive.UpdateTime.Add(-time.Hour)}}
	require.NoError(t, p.registerUsage(ctx, wasActive, nil, stale))
	assert.Equal(t, []time.Time{termEnd, deletedAt, now}, []time.Time{f.regs[0].End, f.regs[1].End, f.regs[2].End})
}

// The stored copy of an updateTime may be rounded to the microsecond; only
// a read older by more than that is older than the stored state.
func TestOlderThanStored(t *testing.T) {
	read := time.Date(2026, 1, 5, 9, 0, 0, 999_999_600, time.UTC)
	roundedUp := read.Round(time.Microsecond) // as PostgreSQL stores it from text
	if olderThanStored(read, roundedUp) {
		t.Errorf("the same updateTime, stored rounded up to %v, counts as older", roundedUp)
	}
	if olderThanStored(read, read) || olderThanStored(read.Add(time.Second), read) {
		t.Error("an equal or newer read counts as older")
	}
	if !olderThanStored(read.Add(-2*time.Microsecond), read) {
		t.Error("a read 2µs older does not count as older")
	}
}
