package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/google/uuid"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// ---------------------------------------------------------------------------
// Your app: tenants stand for your own user database. Replace
// tenantDirectory with your tables; keep the callbacks idempotent (they run
// again if anything after them fails).

type tenant struct {
	ID           string `json:"id"`
	Email        string `json:"email"`
	Company      string `json:"company"`
	AccountID    string `json:"accountId"`    // the Procurement account linked at sign-up
	UserIdentity string `json:"userIdentity"` // google.user_identity, for SSO later
}

type subscription struct {
	EntitlementID    string `json:"entitlementId"`
	Plan             string `json:"plan"`
	State            string `json:"state"` // active, ending (pending cancellation), cancelled
	UsageReportingID string `json:"usageReportingId,omitempty"`
}

// tenantDirectory keeps tenants and their subscriptions. Subscriptions are
// keyed by Procurement account, so that one can be provisioned whatever the
// order in which the sign-up and the activation happen.
type tenantDirectory struct {
	mu        sync.Mutex
	tenants   map[string]*tenant                  // by tenant id
	byAccount map[string]string                   // account id → tenant id
	subs      map[string]map[string]*subscription // account id → entitlement id → subscription
}

func newTenantDirectory() *tenantDirectory {
	return &tenantDirectory{tenants: map[string]*tenant{}, byAccount: map[string]string{}, subs: map[string]map[string]*subscription{}}
}

// signUp returns the tenant of the account, creating it on first sign-up
// (a second submission of the form finds the first one's tenant).
func (d *tenantDirectory) signUp(accountID, email, company, userIdentity string) tenant {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.byAccount[accountID]; ok {
		return *d.tenants[id]
	}
	t := &tenant{ID: "t-" + uuid.NewString()[:8], Email: email, Company: company, AccountID: accountID, UserIdentity: userIdentity}
	d.tenants[t.ID] = t
	d.byAccount[accountID] = t.ID
	return *t
}

func (d *tenantDirectory) get(id string) (tenant, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tenants[id]
	if !ok {
		return tenant{}, false
	}
	return *t, true
}

func (d *tenantDirectory) byAccountID(accountID string) (tenant, bool) {
	d.mu.Lock()
	id, ok := d.byAccount[accountID]
	d.mu.Unlock()
	if !ok {
		return tenant{}, false
	}
	return d.get(id)
}

func (d *tenantDirectory) setSubscription(accountID string, s subscription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.subs[accountID] == nil {
		d.subs[accountID] = map[string]*subscription{}
	}
	d.subs[accountID][s.EntitlementID] = &s
}

func (d *tenantDirectory) updateSubscription(accountID, entitlementID string, f func(*subscription)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.subs[accountID][entitlementID]; s != nil {
		f(s)
	}
}

func (d *tenantDirectory) subscriptions(accountID string) []subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []subscription
	for _, s := range d.subs[accountID] {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EntitlementID < out[j].EntitlementID })
	return out
}

// purge deletes a tenant and everything about its account. Purging twice is
// harmless.
func (d *tenantDirectory) purge(tenantID, accountID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tenants, tenantID)
	delete(d.byAccount, accountID)
	delete(d.subs, accountID)
}

// ---------------------------------------------------------------------------
// The Marketplace callbacks. The processor calls them once per change,
// after re-reading the resource from the Procurement API; act on
// c.Entitlement (the entitlement as just read), not on the message.

type app struct {
	marketplace.HandlerDefaults
	tenants *tenantDirectory
	plans   *planCatalog
	log     *slog.Logger
}

// planCatalog is the plans the app can provision (-plans). A plan it does
// not know is a failure no retry fixes: the callback says so with
// events.Permanent, the processor sets the message aside as poison, and an
// operator redrives it from /ops/poison once the plan is added.
type planCatalog struct {
	mu    sync.Mutex
	plans map[string]bool // nil: any plan
}

func newPlanCatalog(plans []string) *planCatalog {
	c := &planCatalog{}
	for _, p := range plans {
		c.add(p)
	}
	return c
}

// add makes plan known (your app: a deployment that adds the plan).
func (c *planCatalog) add(plan string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans == nil {
		c.plans = map[string]bool{}
	}
	c.plans[plan] = true
}

// check returns a permanent error for a plan the app cannot provision.
func (c *planCatalog) check(plan string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans != nil && !c.plans[plan] {
		return events.Permanent(fmt.Errorf("plan %q is not one this app provisions (-plans): add it, then redrive the message from /ops/poison", plan))
	}
	return nil
}

func (a *app) OnEntitlementActive(ctx context.Context, c *marketplace.Change) error {
	ent := c.Entitlement
	if err := a.plans.check(ent.Plan); err != nil {
		return err
	}
	// Your app: provision the product for the customer.
	a.tenants.setSubscription(ent.AccountID, subscription{
		EntitlementID: ent.ID, Plan: ent.Plan, State: "active", UsageReportingID: ent.UsageReportingID})
	a.log.InfoContext(ctx, "provisioned", "entitlement_id", ent.ID, "account_id", ent.AccountID, "plan", ent.Plan)
	return nil
}

func (a *app) OnEntitlementPlanChanged(ctx context.Context, c *marketplace.Change) error {
	ent := c.Entitlement
	if err := a.plans.check(ent.Plan); err != nil {
		return err
	}
	a.tenants.updateSubscription(ent.AccountID, ent.ID, func(s *subscription) { s.Plan = ent.Plan })
	a.log.InfoContext(ctx, "plan changed", "entitlement_id", ent.ID, "plan", ent.Plan)
	return nil
}

func (a *app) OnEntitlementPendingCancellation(_ context.Context, c *marketplace.Change) error {
	// Keep serving until the end of the term (c.Entitlement.OfferEndTime).
	a.tenants.updateSubscription(c.Entitlement.AccountID, c.Entitlement.ID, func(s *subscription) { s.State = "ending" })
	return nil
}

func (a *app) OnEntitlementCancellationReverted(_ context.Context, c *marketplace.Change) error {
	a.tenants.updateSubscription(c.Entitlement.AccountID, c.Entitlement.ID, func(s *subscription) { s.State = "active" })
	return nil
}

func (a *app) OnEntitlementCancelled(ctx context.Context, c *marketplace.Change) error {
	// Turn the service off. When the cancellation is learnt from a
	// deletion, c.Entitlement is the last state read; it names the account
	// all the same.
	a.tenants.updateSubscription(c.Entitlement.AccountID, c.Entitlement.ID, func(s *subscription) { s.State = "cancelled" })
	a.log.InfoContext(ctx, "turned off", "entitlement_id", c.Entitlement.ID)
	return nil
}

func (a *app) OnAccountDeleted(ctx context.Context, c *marketplace.Change) error {
	// Delete the customer's data. c.Linked is the stored account, with the
	// tenant linked at sign-up (VendorUserID is empty if it never signed up).
	acct := c.Linked
	a.tenants.purge(acct.VendorUserID, acct.ID)
	a.log.InfoContext(ctx, "purged customer data", "account_id", acct.ID, "tenant_id", acct.VendorUserID)
	return nil
}

func (a *app) OnUnknown(ctx context.Context, c *marketplace.Change) error {
	a.log.WarnContext(ctx, "unknown Marketplace event type; acknowledged", "event_type", c.Type, "event_id", c.Trigger.ID())
	return nil
}

// ---------------------------------------------------------------------------
// Your product's API, metered: every call records one unit of the first
// usage metric for the caller's entitlement.

func (b *backend) work(w http.ResponseWriter, r *http.Request) {
	// Your app: authenticate the caller. The header stands for that here.
	t, ok := b.tenants.get(r.Header.Get("X-Tenant"))
	if !ok {
		http.Error(w, "unknown tenant", http.StatusUnauthorized)
		return
	}
	var sub *subscription
	for _, s := range b.tenants.subscriptions(t.AccountID) {
		if (s.State == "active" || s.State == "ending") && s.UsageReportingID != "" {
			sub = &s
			break
		}
	}
	if sub == nil {
		http.Error(w, "no active subscription", http.StatusPaymentRequired)
		return
	}
	// Stop serving customers Google told us not to (billing disabled...).
	serving, err := b.reporter.Serving(r.Context(), sub.EntitlementID)
	if err != nil {
		b.log.ErrorContext(r.Context(), "reading the serving state failed", "entitlement_id", sub.EntitlementID, "error", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if !serving.Serving {
		http.Error(w, "subscription suspended by Google Cloud: "+serving.Block.Code, http.StatusPaymentRequired)
		return
	}
	// ... do the work ...
	err = b.reporter.Record(r.Context(), usage.Record{EntitlementID: sub.EntitlementID, Metric: b.cfg.Metrics[0], Int64: 1})
	switch {
	case errors.Is(err, usage.ErrAfterEnd), errors.Is(err, usage.ErrWindowSealed), errors.Is(err, usage.ErrUnknownConsumer):
		http.Error(w, "subscription ended", http.StatusPaymentRequired)
		return
	case err != nil:
		b.log.ErrorContext(r.Context(), "recording usage failed", "error", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"entitlementId": sub.EntitlementID, "metric": b.cfg.Metrics[0], "recorded": 1})
}
