package doctor_test

import (
	"context"
	"fmt"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/doctor"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

func TestDoctor(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	ctx := context.Background()
	ps, err := pubsub.NewClient(ctx, "vendor-project", srv.PubSubOptions()...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ps.Close() })
	good := doctor.Params{
		ProviderID:     srv.ProviderID(),
		PubSub:         ps,
		Subscription:   "marketplace", // an id, in the client's project
		ServiceName:    srv.ServiceName(),
		SignupAudience: srv.ServiceName(),
	}
	otherTopic := "projects/vendor-project/subscriptions/other-topic"
	tests := []struct {
		name   string
		change func(p *doctor.Params)
		failed []string // names of the failing checks
		fix    string   // in the report's text
	}{
		{name: "all ok", change: func(*doctor.Params) {}},
		{
			name:   "wrong provider",
			change: func(p *doctor.Params) { p.ProviderID = "someone-else" },
			failed: []string{doctor.CheckEntitlements, doctor.CheckAccounts, doctor.CheckSubscription},
			fix:    "check the partner id",
		},
		{
			name:   "invalid provider",
			change: func(p *doctor.Params) { p.ProviderID = "not/valid" },
			failed: []string{doctor.CheckEntitlements, doctor.CheckAccounts, doctor.CheckSubscription},
			fix:    "Technical integration",
		},
		{
			name:   "wrong service",
			change: func(p *doctor.Params) { p.ServiceName = "wrong.endpoints.acme-provider.cloud.goog" },
			failed: []string{doctor.CheckServiceControl},
			fix:    "roles/servicemanagement.serviceController",
		},
		{
			name:   "missing subscription",
			change: func(p *doctor.Params) { p.Subscription = "projects/vendor-project/subscriptions/nope" },
			failed: []string{doctor.CheckSubscription},
			fix:    "gcloud pubsub subscriptions create nope --topic=projects/cloudcommerceproc-prod/topics/acme-provider --project=vendor-project",
		},
		{
			name:   "subscription on another topic",
			change: func(p *doctor.Params) { p.Subscription = otherTopic },
			failed: []string{doctor.CheckSubscription},
			fix:    "create a subscription on the Marketplace topic",
		},
		{
			name:   "audience with a scheme",
			change: func(p *doctor.Params) { p.SignupAudience = "https://example.com/signup" },
			failed: []string{doctor.CheckSignupAudience},
			fix:    "product domain",
		},
	}
	createOtherSubscription(t, srv, otherTopic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.change(&p)
			report := doctor.Run(ctx, p, srv.ClientOptions()...)
			t.Log("\n" + report.String())
			require.Len(t, report.Checks, 5)
			var failed []string
			for _, c := range report.Checks {
				assert.NotEmpty(t, c.Detail, c.Name)
				if !c.OK {
					failed = append(failed, c.Name)
					assert.NotEmpty(t, c.Fix, c.Name)
				}
			}
			assert.Equal(t, tt.failed, failed, report.String())
			assert.Equal(t, len(tt.failed) == 0, report.OK())
			if tt.fix != "" {
				assert.Contains(t, report.String(), tt.fix)
				assert.Contains(t, report.String(), "FAIL")
			} else {
				assert.Contains(t, report.String(), "all checks passed")
			}
		})
	}
}

// A Pub/Sub client is optional: without one the subscription is not checked.
func TestDoctorWithoutPubSub(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	report := doctor.Run(context.Background(), doctor.Params{
		ProviderID: srv.ProviderID(), ServiceName: srv.ServiceName(),
	}, srv.ClientOptions()...)
	assert.True(t, report.OK(), report.String())
	assert.Contains(t, report.String(), "skipped: no Pub/Sub client given")
}

// createOtherSubscription creates a subscription name on a topic of the
// vendor's own.
func createOtherSubscription(t *testing.T, srv *marketplacetest.Server, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := srv.PubSub().GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/vendor-project/topics/orders"})
	require.NoError(t, err)
	_, err = srv.PubSub().GServer.CreateSubscription(ctx, &pubsubpb.Subscription{Name: name, Topic: "projects/vendor-project/topics/orders"})
	require.NoError(t, err)
}

// Run checks the configuration an integration runs with and prints how to
// fix what is wrong: here the service name has a typo.
func ExampleRun() {
	s := marketplacetest.New(nil) // plays Google in this example
	defer s.Close()
	// Without options, Run creates its clients with Application Default
	// Credentials; here they point at the emulator.
	report := doctor.Run(context.Background(), doctor.Params{
		ProviderID:  s.ProviderID(),
		ServiceName: "exmaple-service.endpoints.acme-provider.cloud.goog",
	}, s.ClientOptions()...)
	for _, c := range report.Checks {
		fmt.Println(c.OK, c.Name)
	}
	fmt.Println("all ok:", report.OK())
	// Output:
	// true procurement: read entitlements
	// true procurement: read accounts
	// true pubsub: subscription
	// false service control: service name and permission to report
	// true sign-up: JWT audience
	// all ok: false
}
