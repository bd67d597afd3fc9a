package doctor_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/doctor"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Run runs every check when clients cannot be created: each failure is
// reported, not only the first. Not parallel: it changes the environment.
func TestDoctorReportsEveryClientItCannotCreate(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "no-such-key.json"))
	report := doctor.Run(context.Background(), doctor.Params{
		ProviderID:     "acme",
		PubSubProject:  "vendor-project",
		Subscription:   "marketplace",
		ServiceName:    "acme.endpoints.vendor-project.cloud.goog",
		SignupAudience: "acme.example.com",
	})
	require.False(t, report.OK())
	got := map[string]doctor.Check{}
	for _, c := range report.Checks {
		got[c.Name] = c
	}
	for _, name := range []string{doctor.CheckEntitlements, doctor.CheckAccounts, doctor.CheckSubscription,
		doctor.CheckServiceControl} {
		c, ok := got[name]
		require.True(t, ok, "check %q ran", name)
		assert.False(t, c.OK, name)
		assert.Contains(t, c.Detail, "cannot create a", name)
		assert.Contains(t, c.Fix, "credentials", name)
	}
	assert.True(t, got[doctor.CheckSignupAudience].OK)
}

// Given a project and options instead of a client, Run creates the Pub/Sub
// client itself; given a Procurement client, it checks with that one and
// takes the provider id from it.
func TestDoctorCreatesPubSubClient(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	ctx := context.Background()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(t, err)
	report := doctor.Run(ctx, doctor.Params{
		Procurement:   client,
		PubSubProject: "vendor-project",
		Subscription:  "marketplace",
	}, srv.PubSubOptions()...)
	assert.True(t, report.OK(), report.String())
	assert.Contains(t, report.String(), "receives projects/cloudcommerceproc-prod/topics/"+srv.ProviderID())
	assert.Contains(t, report.String(), "providers/"+srv.ProviderID()+"/entitlements answered")
}
