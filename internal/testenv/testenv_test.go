package testenv_test

import (
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// The recorder takes the client's waits: a Retry-After of a minute is
// recorded, not slept, and advances the client's clock.
func TestSleepRecorderTakesTheClientsWaits(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	rec := testenv.NewSleepRecorder(start)
	client := testenv.Client(t, srv, &procurement.Config{Runtime: gcpmarketplace.Runtime{Clock: rec.Now},
		Retry: procurement.RetryPolicy{MaxElapsed: 5 * time.Minute}})
	testenv.SetSleep(client, rec.Sleep)
	srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodAccountsList, Kind: marketplacetest.FaultRateLimit, RetryAfter: time.Minute})
	began := time.Now()
	if _, err := client.ListAccountsPage(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("the call took %v: it slept", took)
	}
	if got := rec.Delays(); len(got) != 1 || got[0] != time.Minute {
		t.Errorf("delays %v, want [1m]", got)
	}
	if got := rec.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Errorf("clock %v, want %v", got, start.Add(time.Minute))
	}
}

// The feed hands out each published event once, in order, until rewound.
func TestFeed(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	feed := testenv.NewFeed(env.Server)
	if _, err := env.Server.CreateAccount(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := feed.Next()
	if len(first) == 0 {
		t.Fatal("no message for the new account")
	}
	if again := feed.Next(); len(again) != 0 {
		t.Errorf("%d messages handed out twice", len(again))
	}
	feed.Rewind()
	if again := feed.Next(); len(again) != len(first) || again[0].ID != first[0].ID {
		t.Errorf("after Rewind: %d messages, want %d", len(again), len(first))
	}
}

func TestWithPoolSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u@h:5432/db?sslmode=disable": "postgres://u@h:5432/db?pool_max_conns=7&sslmode=disable",
		"host=h dbname=db":                       "host=h dbname=db pool_max_conns=7",
	} {
		if got := testenv.WithPoolSize(in, 7); got != want {
			t.Errorf("WithPoolSize(%q) = %q, want %q", in, got, want)
		}
	}
}
