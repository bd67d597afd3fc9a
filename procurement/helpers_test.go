package procurement_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

type bundle struct {
	srv    *marketplacetest.Server
	client *procurement.Client
	sleeps *testenv.SleepRecorder
}

// setup starts an emulator and a client on it whose retries do not sleep:
// a recorder takes each delay and advances the client's clock by it. cfg,
// if given, is the client's Config (its Clock is replaced); without it the
// client has the default one.
func setup(t *testing.T, cfg ...procurement.Config) bundle {
	t.Helper()
	var c procurement.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	sleeps := testenv.NewSleepRecorder(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	c.Clock = sleeps.Now
	srv := marketplacetest.New(t)
	client := testenv.Client(t, srv, &c)
	testenv.SetSleep(client, sleeps.Sleep)
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
