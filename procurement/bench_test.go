package procurement_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	cp "google.golang.org/api/cloudcommerceprocurement/v1"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// benchEntitlement starts an emulator holding one active entitlement.
func benchEntitlement(b *testing.B) (*marketplacetest.Server, string) {
	b.Helper()
	ctx := context.Background()
	srv := marketplacetest.New(b)
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(b, err)
	accountID, err := srv.CreateAccount(ctx)
	require.NoError(b, err)
	_, err = client.ApproveAccountSignup(ctx, accountID)
	require.NoError(b, err)
	id, err := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: accountID, UsageBased: true})
	require.NoError(b, err)
	_, err = client.ApproveEntitlement(ctx, id, nil)
	require.NoError(b, err)
	return srv, id
}

// BenchmarkGetEntitlement is Client.GetEntitlement: name validation, the
// generated call, error mapping and retry bookkeeping, conversion.
func BenchmarkGetEntitlement(b *testing.B) {
	srv, id := benchEntitlement(b)
	ctx := context.Background()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		e, err := client.GetEntitlement(ctx, id)
		if err != nil || e.State != procurement.EntitlementActive {
			b.Fatal(err, e.State)
		}
	}
}

// BenchmarkGetEntitlementGenerated is the baseline: the bare generated
// client's call.
func BenchmarkGetEntitlementGenerated(b *testing.B) {
	srv, id := benchEntitlement(b)
	ctx := context.Background()
	svc, err := cp.NewService(ctx, srv.ClientOptions()...)
	require.NoError(b, err)
	name := "providers/" + srv.ProviderID() + "/entitlements/" + id
	b.ReportAllocs()
	for b.Loop() {
		e, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
		if err != nil || e.State != string(procurement.EntitlementActive) {
			b.Fatal(err)
		}
	}
}
