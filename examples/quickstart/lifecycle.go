package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// The lifecycle, played as the customer, Google and an operator.

// totalSteps is how many checked steps lifecycle has.
var totalSteps = 10 + len(hourlyUsage)

type driver struct {
	ctx         context.Context
	tl          *timeline
	emu         *marketplacetest.Server
	proc        *marketplace.Processor
	store       *sqlitestore.Store
	reporter    *usage.Reporter
	app         *app
	signupURL   string
	stepTimeout time.Duration

	accountID, entitlementID, tenantID, consumerID string
	recorded                                       int64
	reports                                        []marketplacetest.ReportedOperation
}

// await polls cond until it holds, for at most the step timeout.
func (d *driver) await(what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(d.ctx, d.stepTimeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not seen within %s", what, d.stepTimeout)
		case <-tick.C:
		}
	}
}

func (d *driver) awaitCallback(name string, n int) error {
	return d.await(name, func() (bool, error) { return d.tl.callbackCount(name) >= n, nil })
}

func (d *driver) localEntitlement() (marketplace.Entitlement, error) {
	var e marketplace.Entitlement
	err := d.store.InTx(d.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		e, err = tx.GetEntitlement(ctx, d.entitlementID)
		return err
	})
	return e, err
}

// lifecycle plays the customer's whole life, step by step.
func (d *driver) lifecycle() error {
	for _, step := range []func() error{d.purchase, d.signUp, d.activate, d.reportUsage, d.changePlan, d.cancel, d.leave, d.nothingLeft} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// purchase buys the product; the entitlement is parked until sign-up (steps 1-2).
func (d *driver) purchase() error {
	ctx, emu, tl := d.ctx, d.emu, d.tl
	// 1. Purchase.
	tl.step("purchase", "the customer buys plan %q of the usage-based product, monthly term", "standard")
	ent, err := emu.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "standard", UsageBased: true, OfferDuration: "P1M"})
	if err != nil {
		return err
	}
	snap, _ := emu.Entitlement(ent)
	d.entitlementID, d.accountID, d.consumerID = ent, snap.AccountID, snap.UsageReportingID
	if err := d.awaitCallback("OnEntitlementCreationRequested", 1); err != nil {
		return err
	}
	tl.done("Marketplace published the account and ENTITLEMENT_CREATION_REQUESTED; the processor handled both")

	// 2. The entitlement is parked: approving it before the sign-up would
	// fail with Google's "Precondition check failed".
	if err := d.await("entitlement parked", func() (bool, error) {
		e, err := d.localEntitlement()
		if errors.Is(err, marketplace.ErrNotFound) {
			return false, nil
		}
		return e.Parked, err
	}); err != nil {
		return err
	}
	tl.done("entitlement %s parked until the account signs up (state %s)", short(ent), snap.State)
	return nil
}

// signUp posts the sign-up token as the buyer's browser; the account is approved (steps 3-4).
func (d *driver) signUp() error {
	ctx, emu, tl := d.ctx, d.emu, d.tl
	// 3. Sign-up: Google redirects the buyer's browser to the sign-up URL
	// with a signed JWT in the form field x-gcp-marketplace-token.
	token := emu.SignupToken(marketplacetest.TokenParams{Subject: d.accountID, Audience: emu.ServiceName()})
	tl.step("sign-up", "the buyer's browser POSTs a signed JWT (%d bytes) to %s", len(token), d.signupURL)
	form := url.Values{"x-gcp-marketplace-token": {token}, "email": {"ada@example.com"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.signupURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sign-up: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sign-up: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	d.tenantID = "tenant-" + short(d.accountID)
	tl.done("sign-up page answered %s: %s", resp.Status, strings.TrimSpace(string(body)))

	// 4. The account's sign-up approval.
	acct, ok := emu.Account(d.accountID)
	if !ok || len(acct.Approvals) == 0 || acct.Approvals[0].State != marketplacetest.ApprovalApproved {
		return fmt.Errorf("account %s: signup approval not APPROVED at Google", d.accountID)
	}
	tl.done("account %s approved at Google (approval %q is %s), linked to %s",
		short(d.accountID), acct.Approvals[0].Name, acct.Approvals[0].State, d.tenantID)
	return nil
}

// activate checks that the parked entitlement was approved and provisioned (step 5).
func (d *driver) activate() error {
	emu, tl, ent := d.emu, d.tl, d.entitlementID
	// 5. The parked entitlement was approved and is active.
	if err := d.awaitCallback("OnEntitlementActive", 1); err != nil {
		return err
	}
	if snap, _ := emu.Entitlement(ent); snap.State != marketplacetest.StateActive {
		return fmt.Errorf("entitlement %s is %s at Google, want ACTIVE", ent, snap.State)
	}
	if err := d.awaitEventsAcked("ENTITLEMENT_ACTIVE"); err != nil {
		return err
	}
	tl.done("parked entitlement approved; ENTITLEMENT_ACTIVE received; %s provisioned", d.tenantID)
	return nil
}

// reportUsage records usage hour by hour and checks each hour's report (step 6).
func (d *driver) reportUsage() error {
	ctx, emu, tl, ent := d.ctx, d.emu, d.tl, d.entitlementID
	// 6. Usage, reported hourly: records land in hourly windows in the
	// store; each closed window is checked (services.check) and then
	// reported (services.report) with a deterministic operation id.
	for h, amounts := range hourlyUsage {
		hourStart := d.emu.Clock().Now().Truncate(time.Hour)
		var total int64
		for i, n := range amounts {
			if err := d.emu.Clock().Set(hourStart.Add([]time.Duration{10, 25, 50}[i] * time.Minute)); err != nil {
				return err
			}
			if err := d.reporter.Record(ctx, usage.Record{EntitlementID: ent, Metric: metric, Int64: n}); err != nil {
				return fmt.Errorf("record usage: %w", err)
			}
			total += n
		}
		d.recorded += total
		tl.step("usage", "hour %d: %d %s recorded (%v) in the store", h+1, total, metric, amounts)
		checksBefore := emu.CheckCalls(d.consumerID)
		// The hour ends; after the seal grace (one minute) the window is closed.
		if err := emu.Clock().Set(hourStart.Add(time.Hour + usage.DefaultSealGrace + time.Second)); err != nil {
			return err
		}
		// The window ends at the hour; the first one starts when the
		// entitlement was created.
		var op marketplacetest.ReportedOperation
		if err := d.await(fmt.Sprintf("report of hour %d", h+1), func() (bool, error) {
			for _, r := range emu.Reports() {
				if r.ConsumerID == d.consumerID && r.End.Equal(hourStart.Add(time.Hour)) {
					op = r
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return err
		}
		if emu.CheckCalls(d.consumerID) <= checksBefore {
			return fmt.Errorf("hour %d was reported without a services.check first", h+1)
		}
		d.reports = append(d.reports, op)
		tl.done("services.check passed, then services.report accepted %s-%s: %d %s (operation %s)",
			op.Start.Format("15:04"), op.End.Format("15:04"), sumMetric(op), metric, short(op.OperationID))
	}
	return nil
}

// changePlan requests a plan change, which an operator approves (step 7).
func (d *driver) changePlan() error {
	ctx, emu, tl, ent := d.ctx, d.emu, d.tl, d.entitlementID
	// 7. Plan change, held for an operator by the policy.
	tl.step("plan change", "the customer asks for plan %q", "premium")
	if err := emu.RequestPlanChange(ctx, ent, "premium"); err != nil {
		return err
	}
	var queued []marketplace.ApprovalRequest
	if err := d.await("plan change queued", func() (bool, error) {
		var err error
		queued, err = d.proc.PendingApprovals(ctx)
		return len(queued) == 1, err
	}); err != nil {
		return err
	}
	tl.step("operator", "reviews the queue: %s %s -> %q; approves it", queued[0].Kind, short(queued[0].EntitlementID), queued[0].Plan)
	if err := d.proc.Approve(ctx, ent); err != nil {
		return fmt.Errorf("approve plan change: %w", err)
	}
	if err := d.awaitCallback("OnEntitlementPlanChanged", 1); err != nil {
		return err
	}
	if t, _ := d.app.tenant(d.tenantID); t.Plan != "premium" {
		return fmt.Errorf("tenant plan is %q after the plan change, want premium", t.Plan)
	}
	tl.done("plan change approved at Google; %s now on plan %q", d.tenantID, "premium")
	return nil
}

// cancel cancels at the end of the term (step 8).
func (d *driver) cancel() error {
	ctx, emu, tl, ent := d.ctx, d.emu, d.tl, d.entitlementID
	// 8. Cancellation: pending until the term ends, then cancelled.
	tl.step("cancel", "the customer cancels (effective at the end of the term)")
	if err := emu.Cancel(ctx, ent, false); err != nil {
		return err
	}
	if err := d.awaitCallback("OnEntitlementPendingCancellation", 1); err != nil {
		return err
	}
	tl.step("term ends", "Google ends the entitlement's term")
	if err := emu.EndTerm(ctx, ent); err != nil {
		return err
	}
	if err := d.awaitCallback("OnEntitlementCancelled", 1); err != nil {
		return err
	}
	if t, _ := d.app.tenant(d.tenantID); t.Active {
		return fmt.Errorf("%s still active after the cancellation", d.tenantID)
	}
	if err := d.awaitEventsAcked("ENTITLEMENT_CANCELLED"); err != nil {
		return err
	}
	emu.Clock().Advance(time.Minute)
	if err := d.reporter.Record(ctx, usage.Record{EntitlementID: ent, Metric: metric, Int64: 1}); !errors.Is(err, usage.ErrAfterEnd) {
		return fmt.Errorf("usage after the cancellation: got %v, want usage.ErrAfterEnd", err)
	}
	tl.done("entitlement cancelled; service turned off; usage after the cancellation is refused")
	return nil
}

// leave deletes the account at Google and checks the purge (steps 9-10).
func (d *driver) leave() error {
	ctx, emu, tl := d.ctx, d.emu, d.tl
	// 9. The customer leaves Google Cloud.
	tl.step("account deleted", "the customer's account is deleted at Google")
	if err := emu.DeleteAccount(ctx, d.accountID); err != nil {
		return err
	}
	if err := d.awaitCallback("OnAccountDeleted", 1); err != nil {
		return err
	}
	if err := d.awaitEventsAcked("ACCOUNT_DELETED"); err != nil {
		return err
	}
	tl.done("ACCOUNT_DELETED handled")

	// 10. Purge.
	if _, still := d.app.tenant(d.tenantID); still || !d.app.wasPurged(d.tenantID) {
		return fmt.Errorf("%s was not purged", d.tenantID)
	}
	var accounts []marketplace.Account
	if err := d.store.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		accounts, err = tx.ListAccounts(ctx)
		return err
	}); err != nil {
		return err
	}
	if len(accounts) != 0 {
		return fmt.Errorf("%d account(s) left in the store after the purge", len(accounts))
	}
	tl.done("customer data purged: %s deleted, no account left in the store", d.tenantID)
	return nil
}

// nothingLeft checks that nothing was left behind (step 11).
func (d *driver) nothingLeft() error {
	ctx, emu, tl := d.ctx, d.emu, d.tl
	// 11. Nothing left behind: every message acknowledged, no usage lost
	// or billed twice.
	if err := d.awaitEventsAcked(""); err != nil {
		return err
	}
	billed := emu.BilledTotal(d.consumerID, emu.ServiceName()+"/"+metric)
	if billed != d.recorded {
		return fmt.Errorf("usage billed %d != recorded %d", billed, d.recorded)
	}
	if v := emu.Violations(); len(v) != 0 {
		return fmt.Errorf("double billing: %+v", v)
	}
	backlog, err := d.reporter.Backlog(ctx)
	if err != nil {
		return err
	}
	if len(backlog) != 0 {
		return fmt.Errorf("%d usage window(s) not reported", len(backlog))
	}
	tl.done("every message acknowledged; usage billed = usage recorded; nothing double-billed")
	return nil
}

// awaitEventsAcked waits until every published event of eventType ("" =
// every event) has been acknowledged.
func (d *driver) awaitEventsAcked(eventType string) error {
	what := "all events acknowledged"
	if eventType != "" {
		what = eventType + " acknowledged"
	}
	return d.await(what, func() (bool, error) {
		for _, p := range d.emu.Published() {
			if eventType != "" && p.EventType != eventType {
				continue
			}
			m := d.emu.PubSub().Message(p.MessageID)
			if m == nil || m.Acks == 0 {
				return false, nil
			}
		}
		return true, nil
	})
}
