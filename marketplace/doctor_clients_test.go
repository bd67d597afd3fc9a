package marketplace_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// Doctor runs every check when clients cannot be created: each failure is
// reported, not only the first. Not parallel: it changes the environment.
func TestDoctorReportsEveryClientItCannotCreate(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "no-such-key.json"))
	report := marketplace.Doctor(context.Background(), marketplace.DoctorParams{
		ProviderID:     "acme",
		PubSubProject:  "vendor-project",
		Subscription:   "marketplace",
		ServiceName:    "acme.endpoints.vendor-project.cloud.goog",
		SignupAudience: "acme.example.com",
	})
	require.False(t, report.OK())
	got := map[string]marketplace.DoctorCheck{}
	for _, c := range report.Checks {
		got[c.Name] = c
	}
	for _, name := range []string{marketplace.CheckEntitlements, marketplace.CheckAccounts, marketplace.CheckSubscription,
		marketplace.CheckServiceControl} {
		c, ok := got[name]
		require.True(t, ok, "check %q ran", name)
		assert.False(t, c.OK, name)
		assert.Contains(t, c.Detail, "cannot create a", name)
		assert.Contains(t, c.Fix, "credentials", name)
	}
	assert.True(t, got[marketplace.CheckSignupAudience].OK)
}

// Given a project and options instead of a client, Doctor creates the
// Pub/Sub client itself.
func TestDoctorCreatesPubSubClient(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	report := marketplace.Doctor(context.Background(), marketplace.DoctorParams{
		ProviderID:            srv.ProviderID(),
		ProcurementOptions:    srv.ClientOptions(),
		PubSubProject:         "vendor-project",
		PubSubOptions:         srv.PubSubOptions(),
		Subscription:          "marketplace",
		ServiceName:           srv.ServiceName(),
		ServiceControlOptions: srv.ClientOptions(),
	})
	assert.True(t, report.OK(), report.String())
	assert.Contains(t, report.String(), "receives projects/cloudcommerceproc-prod/topics/"+srv.ProviderID())
}
