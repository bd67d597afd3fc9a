package procurement_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// sleepRecorder replaces real sleeping between retries: it records each
// requested delay and advances a fake clock instead.
type sleepRecorder struct {
	mu     sync.Mutex
	now    time.Time
	delays []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, d)
	s.now = s.now.Add(d)
	return nil
}

func (s *sleepRecorder) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sleepRecorder) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

type bundle struct {
	srv    *marketplacetest.Server
	client *procurement.Client
	sleeps *sleepRecorder
}

// setup starts an emulator and a client on it whose retries do not sleep.
func setup(t *testing.T, opts ...procurement.Option) bundle {
	t.Helper()
	srv := marketplacetest.New(t)
	sleeps := &sleepRecorder{now: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
	all := append([]procurement.Option{
		procurement.WithClientOptions(srv.ClientOptions()...),
		procurement.WithSleep(sleeps.sleep),
		procurement.WithClock(sleeps.clock),
	}, opts...)
	client, err := procurement.NewClient(t.Context(), srv.ProviderID(), all...)
	require.NoError(t, err)
	return bundle{srv: srv, client: client, sleeps: sleeps}
}

// account creates a customer account, with its sign-up approved if asked.
func (b bundle) account(t *testing.T, approved bool) string {
	t.Helper()
	id, err := b.srv.CreateAccount(t.Context())
	require.NoError(t, err)
	if approved {
		_, err := b.client.ApproveAccountSignup(t.Context(), id)
		require.NoError(t, err)
	}
	return id
}

// purchase makes a purchase on a new approved account.
func (b bundle) purchase(t *testing.T, p marketplacetest.PurchaseParams) string {
	t.Helper()
	if p.AccountID == "" {
		p.AccountID = b.account(t, true)
	}
	id, err := b.srv.Purchase(t.Context(), p)
	require.NoError(t, err)
	return id
}

// active makes an ACTIVE entitlement on plan "standard".
func (b bundle) active(t *testing.T) string {
	t.Helper()
	id := b.purchase(t, marketplacetest.PurchaseParams{})
	res, err := b.client.ApproveEntitlement(t.Context(), id, nil)
	require.NoError(t, err)
	require.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
	return id
}
