package procurement_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// ConfirmEnds names exactly the ended entitlements, with their end, in one
// listing plus a GET for each id the listing of live ones leaves out.
func TestConfirmEnds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	live := b.active(t)
	pending := b.active(t)
	require.NoError(t, b.srv.Cancel(ctx, pending, false)) // term end in the future: still billable
	requested := b.purchase(t, marketplacetest.PurchaseParams{})
	cancelled := b.active(t)
	b.srv.Clock().Advance(time.Minute)
	require.NoError(t, b.srv.Cancel(ctx, cancelled, true))
	cancelledAt := b.srv.Clock().Now().UTC()
	deleted := b.active(t)
	require.NoError(t, b.srv.Cancel(ctx, deleted, true))
	require.NoError(t, b.srv.DeleteEntitlement(ctx, deleted))
	for range 3 { // others' entitlements the listing pages through
		b.active(t)
	}

	lists, gets := b.srv.Calls(marketplacetest.MethodEntitlementsList), b.srv.Calls(marketplacetest.MethodEntitlementsGet)
	ends, err := b.client.ConfirmEnds(ctx, []string{live, pending, requested, cancelled, deleted})
	require.NoError(t, err)
	require.Len(t, ends, 2)
	require.WithinDuration(t, cancelledAt, ends[cancelled], time.Millisecond) // the emulator stamps distinct microseconds
	require.Contains(t, ends, deleted)
	require.True(t, ends[deleted].IsZero(), "a deleted entitlement's end is unknown")
	require.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsList)-lists)
	require.Equal(t, 3, b.srv.Calls(marketplacetest.MethodEntitlementsGet)-gets, "requested, cancelled and deleted are not live")

	ends, err = b.client.ConfirmEnds(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, ends)
}

// A failure to read confirms nothing: ConfirmEnds returns the error, never
// a partial answer that would read as "not ended".
func TestConfirmEndsFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	live, cancelled := b.active(t), b.active(t)
	require.NoError(t, b.srv.Cancel(ctx, cancelled, true))

	b.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsList, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	ends, err := b.client.ConfirmEnds(ctx, []string{live, cancelled})
	require.Error(t, err)
	require.Nil(t, ends)

	b.srv.ClearFaults()
	b.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsGet, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	ends, err = b.client.ConfirmEnds(ctx, []string{live, cancelled})
	require.Error(t, err)
	require.Nil(t, ends)
}

// A cancellation at the term's end ends at the term's end (offerEndTime),
// not when Google flipped the entitlement to CANCELLED (updateTime,
// possibly much later): the usage in between must not be billed.
func TestConfirmEndsTermEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{OfferDuration: "P1M"})
	_, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	require.NoError(t, b.srv.Cancel(ctx, id, false))
	ent, ok := b.srv.Entitlement(id)
	require.True(t, ok)
	require.False(t, ent.OfferEndTime.IsZero(), "the term has an end")
	require.NoError(t, b.srv.Clock().Set(ent.OfferEndTime.Add(40*time.Minute)))
	require.NoError(t, b.srv.EndTerm(ctx, id))
	ends, err := b.client.ConfirmEnds(ctx, []string{id})
	require.NoError(t, err)
	require.Equal(t, ent.OfferEndTime.UTC(), ends[id].UTC())
}
