package usage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	servicecontrol "google.golang.org/api/servicecontrol/v1"
)

// minChecksBeforeReject is how many answers with an unlisted check error
// code (see checkResult.unlisted) a window gets, in this process, before it
// can be rejected: with its deadline passed, one answer would be enough
// otherwise, and a catch-up window is past its deadline when sealed.
const minChecksBeforeReject = 3

// unlistedHorizon is how long the count of unlisted answers of a window is
// kept without a new one (the window went elsewhere: another replica, an
// operator).
const unlistedHorizon = time.Hour

// checkResult is what services.check said about one window's operation.
type checkResult struct {
	ok       bool
	block    Block  // a stop-serving code
	unlisted string // a check error code in neither the stop-serving nor the transient list
	reason   string // why not ok, when not blocked
}

// definite reports whether the answer says whether the consumer is served.
func (c checkResult) definite() bool { return c.ok || c.block.Code != "" }

type checkEntry struct {
	res checkResult
	at  time.Time
}

type unlistedCount struct {
	n  int
	at time.Time
}

// transientCheckCode reports whether a check error code says only that
// Google could not decide now: the *_UNAVAILABLE family, LOAD_SHEDDING,
// RESOURCE_EXHAUSTED (rate limiting) and INJECTED_ERROR (fault testing).
func transientCheckCode(code string) bool {
	switch code {
	case "LOAD_SHEDDING", "RESOURCE_EXHAUSTED", "INJECTED_ERROR":
		return true
	}
	return strings.HasSuffix(code, "_UNAVAILABLE")
}

// checkAll returns the services.check answer for each window that has one:
// a cached answer for the same operation id younger than the cache TTL, or
// a new check with the window's own operation id, r.cfg.concurrency at a
// time, while f.checksLeft lasts (ws is oldest first, as claimed). A window
// without an answer (over the budget, or ctx cancelled) is not in the map.
//
// A blocked consumer's backlog (up to the replay limit, hundreds of
// windows) would cost a check per window and flush; only its latest window
// is checked. Until that passes, its other windows get the same answer
// (they are held, not sent, so no operation goes unchecked); once it
// passes, each of them is checked with its own id.
func (f *flush) checkAll(ctx context.Context, ws []Window) map[string]checkResult {
	r := f.r
	results := make(map[string]checkResult, len(ws))
	blocked := map[string]bool{} // consumer ids
	for _, w := range ws {
		if _, ok := f.blocked[w.EntitlementID]; ok {
			blocked[w.ConsumerID] = true
		}
	}
	probes := map[string]Window{} // consumer id → its latest window, for blocked ones
	for _, w := range ws {
		if p, ok := probes[w.ConsumerID]; blocked[w.ConsumerID] && (!ok || w.Start.After(p.Start)) {
			probes[w.ConsumerID] = w
		}
	}
	var first, later []Window
	r.mu.Lock()
	r.pruneChecks(f.now)
	for _, w := range ws {
		if e, ok := r.checks[w.OperationID]; ok && f.now.Sub(e.at) < r.cfg.checkTTL && !e.at.After(f.now) {
			results[w.OperationID] = e.res
		} else if p, ok := probes[w.ConsumerID]; ok && p.OperationID != w.OperationID {
			later = append(later, w)
		} else {
			first = append(first, w)
		}
	}
	r.mu.Unlock()
	f.runChecks(ctx, first, results)
	var again []Window
	for _, w := range later {
		p, answered := results[probes[w.ConsumerID].OperationID]
		switch {
		case p.ok:
			again = append(again, w)
		case answered:
			// Another window's answer: never counted towards rejecting
			// this one for an unlisted code.
			p.unlisted = ""
			results[w.OperationID] = p
		}
	}
	f.runChecks(ctx, again, results)
	return results
}

// runChecks checks the windows of ws, as many as f.checksLeft allows, and
// adds the answers to results and to the cache.
func (f *flush) runChecks(ctx context.Context, ws []Window, results map[string]checkResult) {
	r := f.r
	ws = ws[:min(len(ws), f.checksLeft)]
	f.checksLeft -= len(ws)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.concurrency)
	for _, w := range ws {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := r.check(ctx, w, f.now)
			if ctx.Err() != nil {
				return // an interrupted call says nothing about the consumer
			}
			mu.Lock()
			results[w.OperationID] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range ws {
		res, ok := results[w.OperationID]
		switch {
		case !ok:
		case res.definite():
			r.checks[w.OperationID] = checkEntry{res: res, at: f.now}
		case res.unlisted != "":
			c := r.unlisted[w.OperationID]
			r.unlisted[w.OperationID] = unlistedCount{n: c.n + 1, at: f.now}
		}
	}
}

// pruneChecks forgets cached answers older than the cache TTL and unlisted
// counts not renewed within unlistedHorizon. r.mu is held.
func (r *Reporter) pruneChecks(now time.Time) {
	for id, e := range r.checks {
		if now.Sub(e.at) >= r.cfg.checkTTL || e.at.After(now) {
			delete(r.checks, id)
		}
	}
	for id, c := range r.unlisted {
		if now.Sub(c.at) >= unlistedHorizon {
			delete(r.unlisted, id)
		}
	}
}

func (r *Reporter) check(ctx context.Context, w Window, now time.Time) checkResult {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.rpcTimeout)
	defer cancel()
	req := &servicecontrol.CheckRequest{Operation: &servicecontrol.Operation{
		OperationId:   w.OperationID,
		OperationName: operationName,
		ConsumerId:    w.ConsumerID,
		StartTime:     w.Start.Format(time.RFC3339Nano),
		EndTime:       w.End.Format(time.RFC3339Nano),
	}}
	start := time.Now()
	resp, err := r.svc.Services.Check(r.service, req).Context(ctx).Do()
	r.metrics.call(ctx, methodCheck, start, err)
	if err != nil {
		return checkResult{reason: "services.check: " + shortError(err)}
	}
	if len(resp.CheckErrors) == 0 {
		return checkResult{ok: true}
	}
	for _, ce := range resp.CheckErrors {
		r.metrics.checkError(ctx, ce.Code)
	}
	for _, ce := range resp.CheckErrors {
		if r.cfg.stopCodes[ce.Code] {
			return checkResult{block: Block{Code: ce.Code, Detail: shortText(ce.Detail, 200), Since: now}}
		}
	}
	for _, ce := range resp.CheckErrors {
		if !transientCheckCode(ce.Code) {
			return checkResult{unlisted: ce.Code, reason: "check error " + ce.Code + ": " + shortText(ce.Detail, 200)}
		}
	}
	ce := resp.CheckErrors[0]
	return checkResult{reason: "check error " + ce.Code + ": " + shortText(ce.Detail, 200)}
}

// applyServing sets each consumer's serving state from the answer to its
// latest window (the check is about the consumer, a project, and Google
// refuses only the intervals after it stopped being billable), for every
// entitlement of the consumer among ws.
func (f *flush) applyServing(ctx context.Context, ws []Window, results map[string]checkResult) error {
	latest := map[string]Window{}
	for _, w := range ws {
		if !results[w.OperationID].definite() {
			continue
		}
		if l, ok := latest[w.ConsumerID]; !ok || w.Start.After(l.Start) {
			latest[w.ConsumerID] = w
		}
	}
	done := map[string]bool{}
	for _, w := range ws {
		l, ok := latest[w.ConsumerID]
		if !ok || done[w.EntitlementID] {
			continue
		}
		done[w.EntitlementID] = true
		if err := f.setServing(ctx, w, results[l.OperationID]); err != nil {
			return err
		}
	}
	return nil
}

// hold is what becomes of a window whose check did not pass: it waits for
// a later check, or is rejected once waiting can no longer help.
func (f *flush) hold(ctx context.Context, w Window, res checkResult) Window {
	r := f.r
	switch {
	case res.block.Code != "" && f.now.Sub(w.End) > r.cfg.replayLimit:
		w.State, w.LeaseUntil = StateRejected, time.Time{}
		w.Reason = fmt.Sprintf("consumer blocked (%s) for longer than the replay limit %v", res.block.Code, r.cfg.replayLimit)
	case res.block.Code != "":
		w.Reason = "consumer blocked: " + res.block.Code + ": " + res.block.Detail
		w.LeaseUntil = f.now.Add(max(r.cfg.checkTTL, time.Second))
	case res.unlisted != "" && f.unlistedExhausted(w):
		w.State, w.LeaseUntil = StateRejected, time.Time{}
		w.Reason = fmt.Sprintf("services.check kept answering %s, a code in neither the stop-serving nor the transient list, until the reporting deadline passed;"+
			" classify it in Config.StopServingCodes if it means the consumer cannot be billed, then Retry: %s", res.unlisted, res.reason)
		r.log.ErrorContext(ctx, "usage window rejected: unlisted services.check error until its deadline",
			slog.String("operation", w.OperationID), slog.String("entitlement", w.EntitlementID), slog.String("code", res.unlisted))
	default:
		w.Reason = "check failed: " + res.reason
		w.LeaseUntil = f.now.Add(backoff(w.Attempts + 1))
	}
	f.alertIfLate(ctx, w)
	return w
}

// unlistedExhausted reports whether a window answered with an unlisted check
// code has waited long enough: its deadline has passed and this process
// saw at least minChecksBeforeReject such answers. It then forgets the
// count.
func (f *flush) unlistedExhausted(w Window) bool {
	r := f.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !f.now.After(w.Deadline) || r.unlisted[w.OperationID].n < minChecksBeforeReject {
		return false
	}
	delete(r.unlisted, w.OperationID)
	return true
}

// setServing records a change of the consumer's serving state in the ledger
// and tells the application.
func (f *flush) setServing(ctx context.Context, w Window, res checkResult) error {
	r := f.r
	old, wasBlocked := f.blocked[w.EntitlementID]
	var change *ServingChange
	switch {
	case res.block.Code != "" && (!wasBlocked || old.Code != res.block.Code):
		if wasBlocked {
			res.block.Since = old.Since
		}
		change = &ServingChange{EntitlementID: w.EntitlementID, ConsumerID: w.ConsumerID, Block: res.block}
	case res.ok && wasBlocked:
		change = &ServingChange{EntitlementID: w.EntitlementID, ConsumerID: w.ConsumerID, Serving: true}
	default:
		return nil
	}
	if err := r.ledger.SetBlock(ctx, w.EntitlementID, change.Block); err != nil {
		return fmt.Errorf("usage: flush: record serving state of %s: %w", w.EntitlementID, err)
	}
	if change.Serving {
		delete(f.blocked, w.EntitlementID)
		r.log.InfoContext(ctx, "consumer serving again", slog.String("entitlement", w.EntitlementID))
	} else {
		f.blocked[w.EntitlementID] = change.Block
		r.log.WarnContext(ctx, "consumer blocked: stop serving", slog.String("entitlement", w.EntitlementID), slog.String("code", change.Block.Code))
	}
	if r.cfg.onServing != nil {
		r.cfg.onServing(ctx, *change)
	}
	return nil
}
