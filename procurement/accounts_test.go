package procurement_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestNewClientValidatesProvider(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a/b", "a b", "x?y"} {
		_, err := procurement.NewClient(t.Context(), id)
		require.ErrorIs(t, err, procurement.ErrInvalidName, id)
	}
}

func TestInvalidNamesMakeNoCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	for _, id := range []string{"", "a/b", "providers/other/entitlements/e1", "providers/" + b.srv.ProviderID() + "/accounts/a1", "..", "e 1"} {
		_, err := b.client.GetEntitlement(ctx, id)
		require.ErrorIs(t, err, procurement.ErrInvalidName, "%q", id)
		_, err = b.client.ApproveEntitlement(ctx, id, nil)
		require.ErrorIs(t, err, procurement.ErrInvalidName, "%q", id)
	}
	_, err := b.client.GetAccount(ctx, "providers/other/accounts/a1", nil)
	require.ErrorIs(t, err, procurement.ErrInvalidName)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsGet))
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodAccountsGet))
}

func TestGetAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.account(t, false)

	for _, view := range []procurement.AccountView{"", procurement.AccountViewBasic, procurement.AccountViewFull} {
		acc, err := b.client.GetAccount(ctx, id, &procurement.GetAccountParams{View: view})
		require.NoError(t, err)
		assert.Equal(t, id, acc.ID)
		assert.Equal(t, b.client.AccountName(id), acc.Name)
		assert.Equal(t, procurement.AccountStateActive, acc.State)
		signup, ok := acc.Approval(procurement.SignupApproval)
		require.True(t, ok)
		assert.Equal(t, procurement.ApprovalStatePending, signup.State)
		assert.False(t, acc.SignupApproved())
		assert.False(t, acc.CreateTime.IsZero())
		assert.False(t, acc.UpdateTime.IsZero())
	}
	// A full resource name works as well as an id.
	acc, err := b.client.GetAccount(ctx, b.client.AccountName(id), nil)
	require.NoError(t, err)
	assert.Equal(t, id, acc.ID)

	_, err = b.client.GetAccount(ctx, "no-such-account", nil)
	require.ErrorIs(t, err, procurement.ErrNotFound)
	assert.Contains(t, err.Error(), "procurement: get account providers/"+b.srv.ProviderID()+"/accounts/no-such-account: not found (404)")
}

func TestListAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	want := map[string]bool{}
	for range 5 {
		want[b.account(t, false)] = true
	}

	got := map[string]bool{}
	for acc, err := range b.client.ListAccounts(ctx, &procurement.ListAccountsParams{PageSize: 2}) {
		require.NoError(t, err)
		assert.False(t, got[acc.ID], "account %s listed twice", acc.ID)
		got[acc.ID] = true
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 3, b.srv.Calls(marketplacetest.MethodAccountsList), "5 accounts in pages of 2")

	page, err := b.client.ListAccountsPage(ctx, &procurement.ListAccountsParams{PageSize: 3})
	require.NoError(t, err)
	require.Len(t, page.Accounts, 3)
	require.NotEmpty(t, page.NextPageToken)
	page2, err := b.client.ListAccountsPage(ctx, &procurement.ListAccountsParams{PageSize: 3, PageToken: page.NextPageToken})
	require.NoError(t, err)
	require.Len(t, page2.Accounts, 2)
	assert.Empty(t, page2.NextPageToken)

	// Breaking out of the loop stops fetching.
	calls := b.srv.Calls(marketplacetest.MethodAccountsList)
	for range b.client.ListAccounts(ctx, &procurement.ListAccountsParams{PageSize: 1}) {
		break
	}
	assert.Equal(t, calls+1, b.srv.Calls(marketplacetest.MethodAccountsList))

	_, err = b.client.ListAccountsPage(ctx, &procurement.ListAccountsParams{PageToken: "garbage"})
	require.ErrorIs(t, err, procurement.ErrInvalidArgument)
}

func TestApproveAccountSignupIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.account(t, false)

	res, err := b.client.ApproveAccountSignup(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.True(t, res.Account.SignupApproved(), "the result carries the state after the change")

	res, err = b.client.ApproveAccountSignup(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	assert.True(t, res.Account.SignupApproved())
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodAccountsApprove), "the second call sends no write")

	acc, ok := b.srv.Account(id)
	require.True(t, ok)
	assert.Equal(t, "APPROVED", acc.Approvals[0].State)

	_, err = b.client.ApproveAccountSignup(ctx, "missing")
	require.ErrorIs(t, err, procurement.ErrNotFound)
}

func TestRejectAccountThenApprove(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.account(t, false)

	res, err := b.client.RejectAccount(ctx, id, &procurement.RejectAccountParams{Reason: "incomplete sign-up"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	signup, _ := res.Account.Approval(procurement.SignupApproval)
	assert.Equal(t, procurement.ApprovalStateRejected, signup.State)
	assert.Equal(t, "incomplete sign-up", signup.Reason)

	res, err = b.client.RejectAccount(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)

	// A rejected approval can later be approved.
	res, err = b.client.ApproveAccount(ctx, id, &procurement.ApproveAccountParams{Reason: "fixed", Properties: map[string]string{"k": "v"}})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.True(t, res.Account.SignupApproved())

	// An unknown approval name is the API's 400.
	_, err = b.client.ApproveAccount(ctx, id, &procurement.ApproveAccountParams{ApprovalName: "other"})
	require.ErrorIs(t, err, procurement.ErrInvalidArgument)
}

func TestReasonTooLongIsRefusedBeforeTheCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	long := strings.Repeat("x", 257)
	id := b.account(t, false)
	_, err := b.client.RejectAccount(ctx, id, &procurement.RejectAccountParams{Reason: long})
	require.ErrorIs(t, err, procurement.ErrReasonTooLong)
	assert.Contains(t, err.Error(), "257 bytes")
	_, err = b.client.ApproveAccount(ctx, id, &procurement.ApproveAccountParams{Reason: long})
	require.ErrorIs(t, err, procurement.ErrReasonTooLong)
	_, err = b.client.RejectEntitlement(ctx, "e1", &procurement.RejectEntitlementParams{Reason: long})
	require.ErrorIs(t, err, procurement.ErrReasonTooLong)
	_, err = b.client.RejectPlanChange(ctx, "e1", &procurement.RejectPlanChangeParams{Reason: long})
	require.ErrorIs(t, err, procurement.ErrReasonTooLong)
	err = b.client.SuspendEntitlement(ctx, "e1", &procurement.SuspendEntitlementParams{Reason: long})
	require.ErrorIs(t, err, procurement.ErrReasonTooLong)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodAccountsReject)+b.srv.Calls(marketplacetest.MethodAccountsApprove)+
		b.srv.Calls(marketplacetest.MethodAccountsGet)+b.srv.Calls(marketplacetest.MethodEntitlementsGet))

	// Exactly 256 bytes (multi-byte runes count as bytes) is accepted.
	ok := strings.Repeat("é", 128)
	_, err = b.client.RejectAccount(ctx, id, &procurement.RejectAccountParams{Reason: ok})
	require.NoError(t, err)
}

func TestResetAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	entID := b.active(t)
	ent, err := b.client.GetEntitlement(ctx, entID)
	require.NoError(t, err)

	require.NoError(t, b.client.ResetAccount(ctx, ent.AccountID))
	ent, err = b.client.GetEntitlement(ctx, entID)
	require.NoError(t, err)
	assert.Equal(t, procurement.EntitlementCancelled, ent.State)
	acc, err := b.client.GetAccount(ctx, ent.AccountID, nil)
	require.NoError(t, err)
	assert.False(t, acc.SignupApproved())

	require.ErrorIs(t, b.client.ResetAccount(ctx, "missing"), procurement.ErrNotFound)
}

// The generated client underneath is built from the options given to
// NewClient, and usable for what the package does not cover.
func TestService(t *testing.T) {
	t.Parallel()
	srv := marketplacetest.New(t)
	client, err := procurement.NewClient(t.Context(), srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(t, err)
	assert.Equal(t, srv.ProviderID(), client.ProviderID())
	id, err := srv.CreateAccount(t.Context())
	require.NoError(t, err)
	acc, err := client.Service().Providers.Accounts.Get(client.AccountName(id)).Context(t.Context()).Do()
	require.NoError(t, err)
	assert.Equal(t, client.AccountName(id), acc.Name)
	_, err = client.GetAccount(t.Context(), id, nil)
	require.NoError(t, err)
}

func TestApproveEntitlementAfterSignupRejected(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	accID := b.account(t, false)
	_, err := b.client.RejectAccount(ctx, accID, nil)
	require.NoError(t, err)
	id := b.purchase(t, marketplacetest.PurchaseParams{AccountID: accID})
	_, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrSignupNotApproved)
	assert.Contains(t, err.Error(), "sign-up approval is REJECTED")
}
