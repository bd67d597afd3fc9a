package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// entTrigger says why an entitlement is being settled.
type entTrigger struct {
	source string
	// ev is the message's event (source message): its eventId is
	// deduplicated and marked processed in the commit.
	ev events.Event
	// listed is the entitlement as just listed (reconcile): no GET.
	listed *procurement.Entitlement
	// operator is an operator's answer to the queued request.
	operator *Decision
	// origin is, for sourceAccountDeleted, the source of the account's
	// settlement (its history's Source).
	origin string
}

type entResult struct {
	outcome   outcome
	action    Outcome // what the rule did about a request waiting for the vendor
	wasQueued bool
	added     bool // first seen
	updated   bool // a newer state was stored
	deleted   bool // removed locally
	final     *procurement.Entitlement
}

// settleEntitlement is the pipeline for one entitlement: lock, local state
// and deduplication, re-read, updateTime guard, Marketplace rule,
// callbacks for the transitions observed, commit. When the rule approves or
// rejects at Google, what was observed is committed first
// (commitObserved), then the change is made (carryOut), then its callbacks
// run and the final commit records the event id.
func (p *Processor) settleEntitlement(ctx context.Context, id string, tr entTrigger, log *slog.Logger) (entResult, error) {
	log = log.With(slog.String("entitlement_id", id))
	unlock, err := p.lock(ctx, entitlementKey(id))
	if err != nil {
		return entResult{}, err
	}
	defer unlock()

	loc, err := p.readEntitlementState(ctx, id, tr)
	if err != nil {
		return entResult{}, err
	}
	if loc.dup {
		return entResult{outcome: outcomeDuplicate}, nil
	}
	prev := loc.prev
	res := entResult{wasQueued: loc.queued[ApprovalEntitlement] != nil || loc.queued[ApprovalPlanChange] != nil}
	if tr.operator != nil && !res.wasQueued {
		return res, nil
	}
	cur, skip, err := p.rereadEntitlement(ctx, id, tr, prev, log)
	if err != nil {
		return res, err
	}
	if skip != "" {
		return entResult{outcome: skip, wasQueued: res.wasQueued, final: cur}, nil
	}
	if cur != nil {
		log = log.With(slog.String("account_id", cur.AccountID))
		// The read above looked up the stored entitlement's account
		// already: only an entitlement new here (or, in theory, moved to
		// another account) needs another read.
		if prev == nil || prev.AccountID != cur.AccountID {
			if loc.link, err = p.readAccountLink(ctx, cur.AccountID); err != nil {
				return res, err
			}
		}
	}
	newer := (prev == nil) != (cur == nil) || (prev != nil && cur != nil && cur.UpdateTime.After(prev.UpdateTime))

	// The Marketplace rule for the state the entitlement is in.
	rule := ruleOutcome{after: cur}
	if cur != nil {
		if rule, err = p.applyRule(ctx, cur, prev, loc.queued, tr, log); err != nil {
			return res, err
		}
	}
	// chg is what every callback of this settlement is told besides its
	// type and entitlement.
	chg := Change{Previous: prev, Account: rule.account, Linked: loc.link, Trigger: tr.ev}
	// stored is the local state the remaining callbacks and the commit
	// start from: prev, or the re-read state once committed below.
	stored := prev
	if rule.pending != nil {
		// Commit before acting at Google (see commitObserved).
		obs := observed{stored: prev, read: cur, newer: newer, after: cur}
		if stored, err = p.commitObserved(ctx, id, obs, loc.queued, chg, tr, log); err != nil {
			return res, err
		}
		newer, chg.Previous = false, stored
		if rule, err = p.carryOut(ctx, cur, rule); err != nil {
			return res, err
		}
	}
	res.action = rule.action
	obs := observed{stored: stored, read: cur, newer: newer, after: rule.after, acted: rule.acted}
	if tr.ev != nil {
		obs.trigger = tr.ev.Type()
	}
	return p.finishEntitlement(ctx, id, prev, obs, rule, loc.queued, chg, tr, res, log)
}

// entState is the local state a settlement starts from.
type entState struct {
	dup    bool         // the triggering eventId was processed already
	prev   *Entitlement // the stored entitlement, or nil
	link   *Account     // the stored account of prev, or nil
	queued map[ApprovalKind]*ApprovalRequest
}

// readEntitlementState reads the local state and checks for a duplicate,
// in one short read-only transaction. The key lock makes it current: every
// earlier commit about this entitlement returned before the lock was
// released. It is not one transaction with the commit (it never was),
// which is why the commit re-checks the event id (MarkProcessed) and, when
// it advances the entitlement, the updateTime (AdvanceEntitlement).
func (p *Processor) readEntitlementState(ctx context.Context, id string, tr entTrigger) (entState, error) {
	st := entState{queued: map[ApprovalKind]*ApprovalRequest{}}
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil && tr.source != sourceRedrive {
			done, err := tx.IsProcessed(ctx, tr.ev.ID())
			if err != nil || done {
				st.dup = done
				return err
			}
		}
		e, err := tx.GetEntitlement(ctx, id)
		switch {
		case err == nil:
			st.prev = &e
		case !errors.Is(err, ErrNotFound):
			return err
		}
		// Requests are queued only while the entitlement waits for approval
		// (and removed by the commit that sees it move on), so other states
		// need not look, unless an operator asks.
		if tr.operator != nil || (st.prev != nil && (st.prev.State == procurement.EntitlementActivationRequested ||
			st.prev.State == procurement.EntitlementPendingPlanChangeApproval)) {
			for _, k := range [...]ApprovalKind{ApprovalEntitlement, ApprovalPlanChange} {
				r, err := tx.GetApproval(ctx, id, k)
				switch {
				case err == nil:
					st.queued[k] = &r
				case !errors.Is(err, ErrNotFound):
					return err
				}
			}
		}
		if st.prev != nil {
			st.link, err = getAccount(ctx, tx, st.prev.AccountID)
			return err
		}
		return nil
	})
	if err != nil {
		return entState{}, fmt.Errorf("marketplace: reading local state of entitlement %s: %w", id, err)
	}
	return st, nil
}

// rereadEntitlement returns the entitlement as it is now (nil: it no
// longer exists at Google), or the outcome that ends the settlement there:
// a read older than the stored state (outcomeStale, with the read), or an
// entitlement neither Google nor the store knows (outcomeNotFound).
func (p *Processor) rereadEntitlement(ctx context.Context, id string, tr entTrigger, prev *Entitlement, log *slog.Logger) (*procurement.Entitlement, outcome, error) {
	// The message is a hint: act on the resource as it is now. So is a
	// listed snapshot (Reconcile): a message settled since its page was
	// fetched may have stored a newer state, which it must not undo.
	cur := tr.listed
	if cur == nil || (prev != nil && olderThanStored(cur.UpdateTime, prev.UpdateTime)) {
		var err error
		if cur, err = p.getEntitlement(ctx, id); err != nil {
			return nil, "", err
		}
	}
	if cur != nil && prev != nil && olderThanStored(cur.UpdateTime, prev.UpdateTime) {
		// Still older than what is stored: nothing in it is new, and
		// acting on it would repeat or undo what is done.
		log.LogAttrs(ctx, slog.LevelDebug, "marketplace: entitlement read is older than the stored state; ignored",
			slog.Time("read_update_time", cur.UpdateTime), slog.Time("stored_update_time", prev.UpdateTime))
		return cur, outcomeStale, nil
	}
	if cur == nil && prev == nil {
		// The API answers 404 and nothing is known here: an entitlement
		// removed before this message came, another provider's, or a
		// made-up id. Nothing to do, but a message acknowledged without
		// effect is said and counted, never silent.
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: entitlement not found at the Procurement API nor locally; acknowledged without effect")
		return nil, outcomeNotFound, nil
	}
	return cur, "", nil
}

// finishEntitlement ends a settlement: it registers usage, runs the
// callbacks of the transitions observed (obs: from the stored state to the
// state just read, if newer, then from that to the state the processor's
// own change produced) and commits the event id, the new local state and
// the queue, together. prev is the state stored when the settlement began.
func (p *Processor) finishEntitlement(ctx context.Context, id string, prev *Entitlement, obs observed, rule ruleOutcome,
	queued map[ApprovalKind]*ApprovalRequest, chg Change, tr entTrigger, res entResult, log *slog.Logger) (entResult, error) {
	stored, after := obs.stored, obs.after
	steps := obs.callbacks()
	stale := staleApprovals(queued, after)
	changed := obs.newer || rule.acted || rule.action != "" || len(stale) > 0 ||
		(stored != nil && after != nil && stored.Parked != rule.park)
	// Usage is registered before the callbacks, so that OnEntitlementActive
	// can already record usage. Register is an idempotent upsert: if a
	// callback then fails, the redelivery registers again harmlessly.
	if p.cfg.usage != nil && changed {
		if err := p.registerUsage(ctx, stored, after, tr.ev); err != nil {
			return res, err
		}
	}
	if err := p.runCallbacks(ctx, id, steps, chg, tr.source, log); err != nil {
		return res, err
	}
	if !changed && len(steps) == 0 {
		// Nothing newer and nothing to do: no write. The event id is not
		// recorded either; a redelivery is as harmless as this delivery.
		return entResult{outcome: outcomeStale, wasQueued: res.wasQueued, final: after}, nil
	}

	now := p.cfg.now()
	var local *Entitlement
	if after != nil {
		l := toLocal(after, stored, rule.park, now)
		local = &l
	}
	hist := transitionOf(id, stored, local, steps, tr, now)
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	err := p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if tr.ev != nil {
			first, err := tx.MarkProcessed(ctx, tr.ev.ID(), now)
			if err != nil {
				return err
			}
			if !first && tr.source != sourceRedrive {
				log.LogAttrs(ctx, slog.LevelWarn, "marketplace: event processed concurrently elsewhere; use a Store that implements KeyLocker when several processes share it")
			}
		}
		if err := appendTransition(ctx, tx, hist); err != nil {
			return err
		}
		if !changed {
			return nil
		}
		return writeEntitlement(ctx, tx, id, stored, local, rule.hold, stale)
	})
	if err != nil {
		return res, fmt.Errorf("marketplace: committing entitlement %s: %w", id, err)
	}
	res.final = after
	res.added = prev == nil && after != nil
	res.updated = prev != nil && after != nil && changed
	res.deleted = prev != nil && after == nil
	res.outcome = outcomeProcessed
	if rule.action != "" {
		log.LogAttrs(ctx, slog.LevelInfo, "marketplace: entitlement "+string(rule.action), slog.String("source", tr.source))
	}
	return res, nil
}

// commitObserved is the first of the two commits of a settlement that
// approves or rejects something at Google. It runs the callbacks of the
// transitions observed so far (obs: stored → re-read) and commits the
// re-read state, without the triggering eventId. If the process dies after
// Google's change and before the final commit, the redelivery then starts
// from the re-read state and fires only the callbacks of what followed;
// without this commit it would start from the older stored state, which
// Google's change has made unobservable (OnEntitlementCreationRequested or
// OnEntitlementPlanChangeRequested would never fire). It returns the local
// state the rest of the settlement starts from, and removes from queued
// the requests it dequeued.
func (p *Processor) commitObserved(ctx context.Context, id string, obs observed,
	queued map[ApprovalKind]*ApprovalRequest, chg Change, tr entTrigger, log *slog.Logger) (*Entitlement, error) {
	prev, cur := obs.stored, obs.read
	steps := obs.callbacks()
	// Until Google approves it, an entitlement released from parking still
	// waits: should the process die first, sign-up and Reconcile still find
	// it parked.
	now := p.cfg.now()
	local := toLocal(cur, prev, prev != nil && prev.Parked, now)
	stale := staleApprovals(queued, cur)
	if len(steps) == 0 && len(stale) == 0 && prev != nil && sameLocal(local, *prev) {
		return prev, nil // nothing observed that is not stored already
	}
	// Only these callbacks need the registration now; the final commit's
	// registration covers the state after Google's change.
	if p.cfg.usage != nil && len(steps) > 0 {
		if err := p.registerUsage(ctx, prev, cur, tr.ev); err != nil {
			return nil, err
		}
	}
	if err := p.runCallbacks(ctx, id, steps, chg, tr.source, log); err != nil {
		return nil, err
	}
	cctx, cancel := p.commitContext(ctx)
	defer cancel()
	hist := transitionOf(id, prev, &local, steps, tr, now)
	err := p.store.InTx(cctx, func(ctx context.Context, tx Tx) error {
		if err := appendTransition(ctx, tx, hist); err != nil {
			return err
		}
		return writeEntitlement(ctx, tx, id, prev, &local, nil, stale)
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: committing entitlement %s before changing it at Google: %w", id, err)
	}
	for _, k := range stale {
		delete(queued, k)
	}
	return &local, nil
}

// writeEntitlement stores local, the entitlement as re-read (nil: it no
// longer exists at Google), over prev, the stored state, under the
// updateTime guard; it queues hold and removes the stale requests.
func writeEntitlement(ctx context.Context, tx Tx, id string, prev, local *Entitlement, hold *ApprovalRequest, stale []ApprovalKind) error {
	for _, k := range stale {
		if err := tx.DeleteApproval(ctx, id, k); err != nil {
			return err
		}
	}
	if local == nil {
		if prev == nil {
			return nil
		}
		return tx.DeleteEntitlement(ctx, id)
	}
	var err error
	if prev == nil || local.UpdateTime.After(prev.UpdateTime) {
		_, err = tx.AdvanceEntitlement(ctx, *local)
	} else if !sameLocal(*local, *prev) {
		err = tx.PutEntitlement(ctx, *local)
	}
	if err != nil {
		return err
	}
	if hold != nil {
		if _, err := tx.EnqueueApproval(ctx, *hold); err != nil {
			return err
		}
	}
	return nil
}

// staleApprovals lists the queued requests that e (nil: deleted) no longer
// waits for.
func staleApprovals(queued map[ApprovalKind]*ApprovalRequest, e *procurement.Entitlement) []ApprovalKind {
	var out []ApprovalKind
	if queued[ApprovalEntitlement] != nil && (e == nil || !awaitingApproval(e)) {
		out = append(out, ApprovalEntitlement)
	}
	// A plan-change request is for one plan: if the customer has since
	// asked for another, it is not that request that waits any more.
	if q := queued[ApprovalPlanChange]; q != nil && (e == nil || e.State != procurement.EntitlementPendingPlanChangeApproval || e.NewPendingPlan != q.Plan) {
		out = append(out, ApprovalPlanChange)
	}
	return out
}

// olderThanStored reports whether an updateTime read from Google is older
// than the stored one. A store may keep times to the microsecond, and
// PostgreSQL rounds (not truncates) a time sent as text, so the stored copy
// of the very same updateTime can be up to half a microsecond later: only a
// difference beyond a microsecond counts.
func olderThanStored(read, stored time.Time) bool {
	return read.Before(stored.Add(-time.Microsecond))
}

// getEntitlement re-reads an entitlement; nil means it no longer exists.
func (p *Processor) getEntitlement(ctx context.Context, id string) (*procurement.Entitlement, error) {
	e, err := p.client.GetEntitlement(ctx, id)
	switch {
	case errors.Is(err, procurement.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("marketplace: re-reading entitlement %s: %w", id, err)
	}
	return &e, nil
}
