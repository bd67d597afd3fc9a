package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// The application: what a vendor writes. Tenants stand for the vendor's own
// user database.

type tenant struct {
	ID, Email, AccountID, EntitlementID, Plan string
	Active                                    bool
}

type app struct {
	marketplace.HandlerDefaults
	tl *timeline

	mu      sync.Mutex
	tenants map[string]*tenant // by tenant id (the VendorUserID linked at sign-up)
	purged  []string
}

func newApp(tl *timeline) *app { return &app{tl: tl, tenants: map[string]*tenant{}} }

// tenantOf finds the tenant of the account a callback is about, through
// the stored account the processor hands it (c.Linked).
func (a *app) tenantOf(c *marketplace.Change) *tenant {
	if c.Linked == nil || c.Linked.VendorUserID == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tenants[c.Linked.VendorUserID]
}

// signupPage is the page behind the sign-up URL: the token is verified by
// signup.Handler before it runs. A real page would ask the user
// to sign in or create an account first; here the tenant is created at once.
func (a *app) signupPage(proc *marketplace.Processor) func(http.ResponseWriter, *http.Request, verify.SignupClaims) {
	return func(w http.ResponseWriter, r *http.Request, c verify.SignupClaims) {
		t := &tenant{ID: "tenant-" + short(c.AccountID), Email: r.PostFormValue("email"), AccountID: c.AccountID}
		a.mu.Lock()
		a.tenants[t.ID] = t
		a.mu.Unlock()
		a.tl.note("sign-up page", "token verified (sub %s); created %s for %s", short(c.AccountID), t.ID, t.Email)
		res, err := proc.CompleteSignup(r.Context(), marketplace.SignupParams{
			AccountID: c.AccountID, VendorUserID: t.ID, UserIdentity: c.UserIdentity})
		if err != nil {
			http.Error(w, "sign-up could not be completed, please retry", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "Welcome %s: %d subscription(s) set up.\n", t.Email, len(res.Entitlements))
	}
}

func (a *app) OnAccountActive(_ context.Context, c *marketplace.Change) error {
	a.tl.callback("OnAccountActive", "account %s exists at Google; it has not signed up yet", short(c.Account.ID))
	return nil
}

func (a *app) OnEntitlementCreationRequested(_ context.Context, c *marketplace.Change) error {
	a.tl.callback("OnEntitlementCreationRequested", "entitlement %s for plan %q requested", short(c.Entitlement.ID), c.Entitlement.Plan)
	return nil
}

func (a *app) OnEntitlementActive(_ context.Context, c *marketplace.Change) error {
	ent := c.Entitlement
	t := a.tenantOf(c)
	if t == nil {
		return fmt.Errorf("no tenant linked to account %s yet", short(ent.AccountID)) // redelivered later
	}
	a.mu.Lock()
	t.EntitlementID, t.Plan, t.Active = ent.ID, ent.Plan, true
	a.mu.Unlock()
	a.tl.callback("OnEntitlementActive", "provisioned %s on plan %q (usage id %s)", t.ID, ent.Plan, ent.UsageReportingID)
	return nil
}

func (a *app) OnEntitlementPlanChangeRequested(_ context.Context, c *marketplace.Change) error {
	a.tl.callback("OnEntitlementPlanChangeRequested", "customer asks to move from %q to %q", c.Entitlement.Plan, c.Entitlement.NewPendingPlan)
	return nil
}

func (a *app) OnEntitlementPlanChanged(_ context.Context, c *marketplace.Change) error {
	if t := a.tenantOf(c); t != nil {
		a.mu.Lock()
		t.Plan = c.Entitlement.Plan
		a.mu.Unlock()
	}
	a.tl.callback("OnEntitlementPlanChanged", "now on plan %q", c.Entitlement.Plan)
	return nil
}

func (a *app) OnEntitlementPendingCancellation(_ context.Context, c *marketplace.Change) error {
	a.tl.callback("OnEntitlementPendingCancellation", "service continues until the term ends (%s)", c.Entitlement.OfferEndTime.Format(time.DateOnly))
	return nil
}

func (a *app) OnEntitlementCancelled(_ context.Context, c *marketplace.Change) error {
	if t := a.tenantOf(c); t != nil {
		a.mu.Lock()
		t.Active = false
		a.mu.Unlock()
	}
	a.tl.callback("OnEntitlementCancelled", "turned the service off for entitlement %s", short(c.Entitlement.ID))
	return nil
}

func (a *app) OnEntitlementDeleted(_ context.Context, c *marketplace.Change) error {
	a.tl.callback("OnEntitlementDeleted", "entitlement %s deleted at Google", short(c.Entitlement.ID))
	return nil
}

func (a *app) OnAccountDeleted(_ context.Context, c *marketplace.Change) error {
	acct := c.Linked
	if acct.VendorUserID == "" {
		a.tl.callback("OnAccountDeleted", "account %s was never linked: nothing to purge", short(acct.ID))
		return nil
	}
	a.mu.Lock()
	delete(a.tenants, acct.VendorUserID) // idempotent: deleting twice is harmless
	a.purged = append(a.purged, acct.VendorUserID)
	a.mu.Unlock()
	a.tl.callback("OnAccountDeleted", "purged %s and all its data", acct.VendorUserID)
	return nil
}

func (a *app) tenant(id string) (tenant, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tenants[id]; ok {
		return *t, true
	}
	return tenant{}, false
}

func (a *app) wasPurged(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.purged {
		if p == id {
			return true
		}
	}
	return false
}
