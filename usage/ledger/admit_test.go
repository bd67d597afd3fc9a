package ledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func TestAdmit(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	min := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	consumer := func(start, end, frontier time.Time) ledger.ConsumerState {
		return ledger.ConsumerState{Consumer: ledger.Consumer{EntitlementID: "e", Start: start, End: end}, Frontier: frontier}
	}
	for name, tc := range map[string]struct {
		c          ledger.ConsumerState
		at, bucket time.Time
		want       time.Time
		err        error
	}{
		"open consumer":            {c: consumer(time.Time{}, time.Time{}, t0), at: min(5), bucket: min(5), want: min(5)},
		"late: to the frontier":    {c: consumer(time.Time{}, time.Time{}, min(60)), at: min(5), bucket: min(5), want: min(60)},
		"before start":             {c: consumer(min(10), time.Time{}, t0), at: min(5), bucket: min(5), err: ledger.ErrBeforeStart},
		"at start":                 {c: consumer(min(10), time.Time{}, min(10)), at: min(10), bucket: min(10), want: min(10)},
		"at end":                   {c: consumer(time.Time{}, min(30), t0), at: min(30), bucket: min(30), err: ledger.ErrAfterEnd},
		"before end":               {c: consumer(time.Time{}, min(30), t0), at: min(29), bucket: min(29), want: min(29)},
		"final window sealed":      {c: consumer(time.Time{}, min(30), min(30)), at: min(29), bucket: min(29), err: ledger.ErrWindowSealed},
		"start checked before end": {c: consumer(min(10), min(5), t0), at: min(7), bucket: min(7), err: ledger.ErrBeforeStart},
	} {
		t.Run(name, func(t *testing.T) {
			u := ledger.Usage{EntitlementID: "e", At: tc.at, Bucket: tc.bucket}
			got, err := ledger.Admit(tc.c, u)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Admit: err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("Admit: %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
