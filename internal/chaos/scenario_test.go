package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// Plans and what the policy does with them.
const (
	planStandard   = "standard"
	planManual     = "manual"     // a purchase the policy holds for an operator
	planEnterprise = "enterprise" // a plan change the policy holds for an operator
	planForbidden  = "forbidden"  // a plan change the policy rejects
)

var changePlans = []string{planStandard, "premium", "basic", planEnterprise, planForbidden}

// The usage metrics, as declared and as billed.
const (
	metricRequests = "requests"
	metricStorage  = "storage_gib"
)

var chaosPolicy = marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
	switch {
	case r.Kind == marketplace.ApprovalEntitlement && r.Entitlement.Plan == planManual,
		r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == planEnterprise:
		return marketplace.Decision{Outcome: marketplace.OutcomeQueued, MessageToUser: "An operator will review your order."}, nil
	case r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == planForbidden:
		return marketplace.Decision{Outcome: marketplace.OutcomeRejected, Reason: "This plan is not sold any more."}, nil
	}
	return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
})

// customer is one buyer: an account and its entitlements. During a round's
// actions only that customer's action touches it.
type customer struct {
	n        int
	account  string
	signedUp bool
	deleted  bool
	ents     []*ent
}

type ent struct {
	id       string
	consumer string // usageReportingId, "" if not usage-based
	auto     bool   // bought through an automatically approved offer
	gone     bool   // deleted at Google
}

func (c *customer) vendorUserID() string { return fmt.Sprintf("tenant-%05d", c.n) }

func (c *customer) live() []*ent {
	var out []*ent
	for _, x := range c.ents {
		if !x.gone {
			out = append(out, x)
		}
	}
	return out
}

// usageBook is what Record accepted, per consumer and metric.
type usageBook struct {
	mu       sync.Mutex
	accepted map[string]int64 // consumer + " " + metric
}

func (u *usageBook) add(consumer, metric string, v int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.accepted == nil {
		u.accepted = map[string]int64{}
	}
	u.accepted[consumer+" "+metric] += v
}

// usable reports whether the customer may use the product: the states
// whose usage is billed.
func usable(state string) bool {
	switch state {
	case mt.StateActive, mt.StatePendingPlanChangeApproval, mt.StatePendingPlanChange, mt.StatePendingCancellation:
		return true
	}
	return false
}

// run plays the scenario, then delivers everything left with the faults
// off and flushes the usage to the end.
func run(e *env) {
	for r := range e.cfg.rounds {
		e.round(r)
	}
	e.srv.ClearFaults()
	e.drain(e.cfg.rounds, true)
	e.finishUsage()
}

// round is one step of the lifecycle: time passes, usable entitlements
// record usage, every customer takes at most one action (in parallel),
// and everything published is delivered.
func (e *env) round(r int) {
	if r > 0 {
		// Flushes every quarter of the step, as Run would (more often,
		// in real time): a window whose outcome a fault hid is resent
		// well within its one-hour deadline.
		for range 3 {
			e.clock.Advance(e.cfg.step / 4)
			if err := e.rep.Flush(e.ctx); err != nil {
				e.stats.flushErrors.Add(1)
			}
		}
		e.clock.Advance(e.cfg.step / 4)
		e.recordUsage(e.truth())
	}
	e.clock.Advance(time.Second) // the actions come after the usage
	e.parallel(e.plan(r, e.truth()))
	e.drain(r, false)
}

func (e *env) truth() map[string]mt.Entitlement {
	out := map[string]mt.Entitlement{}
	for _, x := range e.srv.Entitlements() {
		out[x.ID] = x
	}
	return out
}

func (e *env) expect(fn func(x expectations)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(e.want)
}

// customerDid runs a customer's (or Google's) action at the emulator; it
// fails only if the scenario asked for something the state forbids.
func (e *env) customerDid(what string, err error) bool {
	if err != nil {
		e.violate("harness: %s: %v", what, err)
		return false
	}
	return true
}

// sdk calls an SDK entry point until it succeeds (or fails in a way ok
// accepts): with faults on, a caller retries.
func (e *env) sdk(what string, call func() error, ok func(error) bool) {
	var err error
	for range 40 {
		if err = call(); err == nil || (ok != nil && ok(err)) {
			return
		}
		e.mu.Lock()
		e.stats.actionRetries++
		e.mu.Unlock()
	}
	e.violate("%s still fails after 40 attempts: %v", what, err)
}

func noLongerPending(err error) bool { return errors.Is(err, marketplace.ErrNoLongerPending) }

// plan draws every customer's action for round r from the state at Google
// (truth) and records the callbacks each will cause. The returned
// functions perform the actions.
func (e *env) plan(r int, truth map[string]mt.Entitlement) []func() {
	var acts []func()
	if r == 0 {
		for n := range e.cfg.customers {
			c := &customer{n: n}
			e.customers = append(e.customers, c)
			plan, usageBased := e.purchasePlan()
			acts = append(acts, func() { e.purchase(c, mt.PurchaseParams{Plan: plan, UsageBased: usageBased}, false) })
		}
		e.stats.actions += len(acts)
		return acts
	}
	for _, c := range e.customers {
		if c.deleted {
			continue
		}
		var act func()
		if c.signedUp {
			act = e.planSignedUp(c, truth)
		} else {
			act = e.planNew(c, truth)
		}
		if act != nil {
			acts = append(acts, act)
		}
	}
	e.stats.actions += len(acts)
	return acts
}

func (e *env) purchasePlan() (plan string, usageBased bool) {
	plan = planStandard
	if e.rng.Float64() < 0.2 {
		plan = planManual
	}
	return plan, e.rng.Float64() < 0.4
}

// purchase buys for c (a new account if c has none). signedUp says what the
// processor will do: approve at once (or hold a manual plan), or park it
// until sign-up.
func (e *env) purchase(c *customer, p mt.PurchaseParams, signedUp bool) {
	p.AccountID, p.OfferDuration = c.account, "P1M"
	id, err := e.srv.Purchase(e.ctx, p)
	if !e.customerDid("purchase", err) {
		return
	}
	x, _ := e.srv.Entitlement(id)
	newAccount := c.account == ""
	c.account = x.AccountID
	c.ents = append(c.ents, &ent{id: id, consumer: x.UsageReportingID, auto: p.AutoApprove})
	e.expect(func(w expectations) {
		if newAccount {
			w.once(events.TypeAccountActive, c.account)
		}
		switch {
		case p.AutoApprove: // ACTIVE before the processor hears of it
			w.once(events.TypeEntitlementActive, id)
		case !signedUp, p.Plan == planManual: // parked, or held for an operator
			w.once(events.TypeEntitlementCreationRequested, id)
		default: // approved by the processor
			w.once(events.TypeEntitlementCreationRequested, id)
			w.once(events.TypeEntitlementActive, id)
		}
	})
}

// planNew: a customer who has not signed up yet.
func (e *env) planNew(c *customer, truth map[string]mt.Entitlement) func() {
	x := e.rng.Float64()
	switch {
	case x < 0.55:
		c.signedUp = true
		for _, en := range c.live() {
			if t := truth[en.id]; t.State == mt.StateActivationRequested && t.Plan != planManual {
				e.expect(func(w expectations) { w.once(events.TypeEntitlementActive, en.id) })
			}
		}
		return func() {
			e.sdk("CompleteSignup "+c.account, func() error {
				_, err := e.proc.CompleteSignup(e.ctx, marketplace.SignupParams{
					AccountID: c.account, VendorUserID: c.vendorUserID(), UserIdentity: "uid-" + c.vendorUserID()})
				return err
			}, nil)
		}
	case x < 0.65:
		plan, usageBased := e.purchasePlan()
		return func() { e.purchase(c, mt.PurchaseParams{Plan: plan, UsageBased: usageBased}, false) }
	case x < 0.70:
		for _, en := range c.live() {
			if truth[en.id].State == mt.StateActivationRequested {
				e.expect(func(w expectations) { w.once(events.TypeEntitlementCancelled, en.id) })
				return func() { e.customerDid("abort "+en.id, e.srv.Cancel(e.ctx, en.id, true)) }
			}
		}
	case x < 0.73:
		return e.planDeleteAccount(c, truth)
	}
	return nil
}

func (e *env) planDeleteAccount(c *customer, truth map[string]mt.Entitlement) func() {
	c.deleted = true
	for _, en := range c.live() {
		en.gone = true
		e.expect(func(w expectations) {
			if truth[en.id].State != mt.StateCancelled {
				w.once(events.TypeEntitlementCancelled, en.id)
			}
			w.once(events.TypeEntitlementDeleted, en.id)
		})
	}
	e.expect(func(w expectations) { w.once(events.TypeAccountDeleted, c.account) })
	return func() { e.customerDid("delete account "+c.account, e.srv.DeleteAccount(e.ctx, c.account)) }
}

// planSignedUp: a customer who has signed up.
func (e *env) planSignedUp(c *customer, truth map[string]mt.Entitlement) func() {
	x := e.rng.Float64()
	switch {
	case x < 0.03:
		return e.planDeleteAccount(c, truth)
	case x < 0.12:
		p := mt.PurchaseParams{Plan: planStandard, UsageBased: e.rng.Float64() < 0.4}
		switch y := e.rng.Float64(); {
		case y < 0.2:
			p.AutoApprove = true
		case y < 0.4:
			p.Plan = planManual
		}
		return func() { e.purchase(c, p, true) }
	}
	live := c.live()
	if len(live) == 0 {
		return nil
	}
	en := live[e.rng.IntN(len(live))]
	t := truth[en.id]
	y := e.rng.Float64()
	once := func(typ events.Type) { e.expect(func(w expectations) { w.once(typ, en.id) }) }
	cancel := func(immediate bool) func() {
		return func() { e.customerDid("cancel "+en.id, e.srv.Cancel(e.ctx, en.id, immediate)) }
	}
	endTerm := func() { e.customerDid("end term of "+en.id, e.srv.EndTerm(e.ctx, en.id)) }
	approve := func() {
		e.sdk("operator Approve "+en.id, func() error { return e.proc.Approve(e.ctx, en.id) }, noLongerPending)
	}
	reject := func() {
		e.sdk("operator Reject "+en.id, func() error { return e.proc.Reject(e.ctx, en.id, "not this time") }, noLongerPending)
	}

	switch t.State {
	case mt.StateActivationRequested: // held for an operator
		switch {
		case y < 0.4:
			once(events.TypeEntitlementActive)
			return approve
		case y < 0.6:
			once(events.TypeEntitlementCancelled)
			once(events.TypeEntitlementDeleted)
			en.gone = true // a rejected entitlement is removed
			return reject
		case y < 0.75:
			once(events.TypeEntitlementCancelled)
			return cancel(true)
		}

	case mt.StateActive:
		switch {
		case y < 0.25:
			target := t.Plan
			for target == t.Plan {
				target = changePlans[e.rng.IntN(len(changePlans))]
			}
			e.expect(func(w expectations) {
				switch {
				case en.auto: // applied at once by Google
					w.add(planKey(en.id, target), 1, 1)
				case target == planEnterprise: // held
					w.once(events.TypeEntitlementPlanChangeRequested, en.id)
				case target == planForbidden: // rejected by the policy
					w.once(events.TypeEntitlementPlanChangeRequested, en.id)
					w.once(events.TypeEntitlementPlanChangeCancelled, en.id)
				default: // approved by the policy
					w.once(events.TypeEntitlementPlanChangeRequested, en.id)
					w.add(planKey(en.id, target), 1, 1)
				}
			})
			return func() { e.customerDid("plan change of "+en.id, e.srv.RequestPlanChange(e.ctx, en.id, target)) }
		case y < 0.40:
			once(events.TypeEntitlementPendingCancellation)
			return cancel(false)
		case y < 0.48:
			once(events.TypeEntitlementCancelled)
			return cancel(true)
		case y < 0.63:
			once(events.TypeEntitlementRenewed)
			return endTerm
		}

	case mt.StatePendingPlanChangeApproval: // held for an operator
		switch {
		case y < 0.30:
			e.expect(func(w expectations) { w.add(planKey(en.id, t.NewPendingPlan), 1, 1) })
			return approve
		case y < 0.50:
			once(events.TypeEntitlementPlanChangeCancelled)
			return reject
		case y < 0.70:
			once(events.TypeEntitlementPlanChangeCancelled)
			return func() { e.customerDid("withdraw plan change of "+en.id, e.srv.CancelPlanChange(e.ctx, en.id)) }
		case y < 0.80:
			once(events.TypeEntitlementPlanChangeCancelled)
			once(events.TypeEntitlementPendingCancellation)
			return cancel(false)
		case y < 0.90:
			once(events.TypeEntitlementRenewed)
			return endTerm
		case y < 0.95:
			once(events.TypeEntitlementCancelled)
			return cancel(true)
		}

	case mt.StatePendingCancellation:
		switch {
		case y < 0.35:
			once(events.TypeEntitlementCancellationReverted)
			return func() { e.customerDid("revert cancellation of "+en.id, e.srv.RevertCancellation(e.ctx, en.id)) }
		case y < 0.70:
			once(events.TypeEntitlementCancelled)
			return endTerm
		case y < 0.80:
			once(events.TypeEntitlementCancelled)
			return cancel(true)
		}

	case mt.StateCancelled:
		if y < 0.5 {
			once(events.TypeEntitlementDeleted)
			en.gone = true
			return func() { e.customerDid("delete "+en.id, e.srv.DeleteEntitlement(e.ctx, en.id)) }
		}
	}
	return nil
}

// recordUsage records one or two amounts for every usage-based entitlement
// that was usable when the last round ended, some of them up to 40 minutes
// late (into windows possibly sealed already).
func (e *env) recordUsage(truth map[string]mt.Entitlement) {
	now := e.clock.Now()
	var fns []func()
	for _, c := range e.customers {
		for _, en := range c.live() {
			t, ok := truth[en.id]
			if en.consumer == "" || !ok || !usable(t.State) {
				continue
			}
			for range 1 + e.rng.IntN(2) {
				metric := metricRequests
				if e.rng.Float64() < 0.3 {
					metric = metricStorage
				}
				v := 1 + e.rng.Int64N(1000)
				at := now.Add(-time.Duration(e.rng.Int64N(int64(40 * time.Minute))))
				// Not before the activation: usage before it is not billable
				// (Service Control refuses it), and a vendor serves none.
				if life, ok := e.srv.ConsumerLife(en.consumer); ok && at.Before(life.Active) {
					at = life.Active
				}
				fns = append(fns, func() {
					err := e.rep.Record(e.ctx, usage.Record{EntitlementID: en.id, Metric: metric, Int64: v, Time: at})
					if err != nil {
						e.violate("usage of usable entitlement %s (%s) refused: %v", en.id, t.State, err)
						return
					}
					e.usage.add(en.consumer, e.srv.ServiceName()+"/"+metric, v)
				})
			}
		}
	}
	e.stats.records += len(fns)
	e.parallel(fns)
}

// finishUsage closes every window with usage and flushes, faults off, until
// nothing is left to report. There is no operator: a window that expired
// (its outcome still unknown at its deadline) stays in the backlog, and the
// checker reports it.
func (e *env) finishUsage() {
	// Walk to the next hour boundary plus the grace in small steps, flushing
	// at each: one jump could carry a window that is still being retried
	// past its deadline without a chance to resend it, which the suite
	// would report as an Expired violation that no real reporter suffers.
	now := e.clock.Now()
	for until := now.Truncate(time.Hour).Add(time.Hour + 2*time.Minute); e.clock.Now().Before(until); {
		e.clock.Advance(min(5*time.Minute, until.Sub(e.clock.Now())))
		if err := e.rep.Flush(e.ctx); err != nil {
			e.violate("usage flush without faults: %v", err)
		}
	}
	for range 50 {
		if err := e.rep.Flush(e.ctx); err != nil {
			e.violate("usage flush without faults: %v", err)
		}
		open, err := e.db.ListWindows(e.ctx, ledger.WindowQuery{States: []usage.WindowState{usage.StatePending, usage.StateUnknown}})
		if err != nil {
			e.violate("listing open usage windows: %v", err)
			return
		}
		if len(open) == 0 {
			return
		}
		// Backoffs and the leases of the processes that "crashed".
		e.clock.Advance(6 * time.Minute)
	}
}
