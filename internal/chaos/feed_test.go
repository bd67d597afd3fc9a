package chaos

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// The feed is a misbehaving Pub/Sub in front of HandleMessage. pstest
// delivers about 100 messages a second per stream, far too few for
// thousands of customers, so the suite reads what the emulator published
// (Published) and delivers it itself, in waves, from several goroutines:
//
//   - every message is delivered at least once, a quarter of them two or
//     three times, in random order;
//   - a delivery may slip to a later wave, and the first delivery of a
//     message that a newer one about the same entitlement already
//     supersedes may wait one to three rounds (true reordering: it then
//     arrives after later changes were processed);
//   - old messages are delivered again, rounds later;
//   - a failed delivery (HandleMessage error) is redelivered; so is a
//     processed one whose acknowledgement was lost;
//   - a wave may end in a restart: the process stops mid-wave, and every
//     message it had not acknowledged — those in flight, those not yet
//     started, and those it committed but had not yet acknowledged — is
//     delivered again to the next process.
//
// A round is drained when no message is left to deliver and the processor's
// own calls published nothing new.
type feed struct {
	pubs     []marketplacetest.PublishedEvent
	acked    []bool // acknowledged at least once
	attempts []int
	lastErr  []string
	latest   map[string]int // entitlement id → index of its newest message
	pending  []delivery     // for the next wave: redeliveries and slipped ones
	deferred map[int][]delivery
}

type delivery struct {
	pub  int // index into feed.pubs
	copy int // distinguishes the Pub/Sub message ids of duplicates
}

func newFeed() feed {
	return feed{latest: map[string]int{}, deferred: map[int][]delivery{}}
}

// nextWave collects the deliveries of the next wave of round: what is
// pending, what was published since the last wave (duplicated, some
// deferred), and at the first wave of a round the deferred deliveries due
// and a few stale redeliveries. final delivers everything and defers
// nothing.
func (e *env) nextWave(round int, first, final bool) []delivery {
	f := &e.feed
	all := e.srv.Published()
	start := len(f.pubs)
	f.pubs = all
	for i := start; i < len(all); i++ {
		f.acked = append(f.acked, false)
		f.attempts = append(f.attempts, 0)
		f.lastErr = append(f.lastErr, "")
		if id := all[i].EntitlementID; id != "" {
			f.latest[id] = i
		}
	}
	e.stats.published = len(all)
	wave := f.pending
	f.pending = nil
	for i := start; i < len(all); i++ {
		copies := 1
		if e.rng.Float64() < duplicateRate {
			copies += 1 + e.rng.IntN(2)
			e.stats.duplicates += copies - 1
		}
		for c := range copies {
			d := delivery{pub: i, copy: c}
			if id := all[i].EntitlementID; !final && id != "" && f.latest[id] > i && e.rng.Float64() < deferRate {
				r := round + 1 + e.rng.IntN(3)
				f.deferred[r] = append(f.deferred[r], d)
				e.stats.deferred++
				continue
			}
			wave = append(wave, d)
		}
	}
	if first {
		wave = append(wave, f.deferred[round]...)
		delete(f.deferred, round)
		if start > 0 {
			for range int(float64(len(all)-start)*staleRate) + 1 {
				wave = append(wave, delivery{pub: e.rng.IntN(start), copy: 10 + e.rng.IntN(1000)})
				e.stats.stale++
			}
		}
	}
	if final {
		for r, ds := range f.deferred {
			wave = append(wave, ds...)
			delete(f.deferred, r)
		}
	}
	e.rng.Shuffle(len(wave), func(i, j int) { wave[i], wave[j] = wave[j], wave[i] })
	if len(wave) > 1 {
		kept := wave[:0]
		for _, d := range wave {
			if e.rng.Float64() < holdBackRate {
				f.pending = append(f.pending, d)
				e.stats.heldBack++
				continue
			}
			kept = append(kept, d)
		}
		wave = kept
		if len(wave) == 0 { // keep making progress
			wave, f.pending = f.pending[:1], f.pending[1:]
		}
	}
	return wave
}

func (e *env) message(d delivery) marketplace.Message {
	p := e.feed.pubs[d.pub]
	e.feed.attempts[d.pub]++
	id := p.MessageID
	if id == "" {
		id = p.EventID
	}
	return marketplace.Message{
		ID:              id + "#" + strconv.Itoa(d.copy),
		Data:            p.Data,
		PublishTime:     p.At,
		DeliveryAttempt: e.feed.attempts[d.pub],
	}
}

// drain delivers waves until round is quiet. A restart may end any wave but
// the final round's.
func (e *env) drain(round int, final bool) {
	for wave := 0; ; wave++ {
		ds := e.nextWave(round, wave == 0, final)
		if len(ds) == 0 {
			return
		}
		if wave >= maxWaves {
			e.violate("lost event: %d deliveries still not acknowledged after %d waves of round %d; first: %s",
				len(ds), maxWaves, round, e.describe(ds[0].pub))
			return
		}
		crashAt := -1
		if !final && e.cfg.restarts > 0 && len(ds) > 1 && e.rng.Float64() < e.cfg.restarts {
			crashAt = e.rng.IntN(len(ds))
		}
		if e.runWave(ds, crashAt, wave == 0 && !final) {
			e.restart()
		}
		e.stats.waves++
	}
}

func (e *env) describe(pub int) string {
	p := e.feed.pubs[pub]
	return p.EventType + " " + p.EventID + " (entitlement " + p.EntitlementID + ", account " + p.AccountID +
		"), last error: " + e.feed.lastErr[pub]
}

type waveResult struct {
	done       bool
	err        error
	afterCrash bool  // finished after the restart began: its ack is lost
	seq        int64 // completion order
}

// runWave delivers ds with cfg.workers goroutines (and, if flush, one usage
// flush beside them). If crashAt >= 0, the process stops when delivery
// crashAt is due: nothing more starts, the context of the deliveries in
// flight is cancelled, and every delivery not acknowledged is put back for
// the next wave. It reports whether the process stopped.
func (e *env) runWave(ds []delivery, crashAt int, flush bool) bool {
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	proc, rep := e.proc, e.rep
	msgs := make([]marketplace.Message, len(ds))
	for i, d := range ds {
		msgs[i] = e.message(d)
	}
	e.stats.deliveries += len(ds)
	res := make([]waveResult, len(ds))
	var (
		next, seq atomic.Int64
		crashed   atomic.Bool
		wg        sync.WaitGroup
	)
	for range e.cfg.workers {
		wg.Go(func() {
			for !crashed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(ds) {
					return
				}
				if i == crashAt {
					crashed.Store(true)
					cancel()
					return
				}
				err := proc.HandleMessage(ctx, msgs[i])
				res[i] = waveResult{done: true, err: err, afterCrash: crashed.Load(), seq: seq.Add(1)}
			}
		})
	}
	if flush {
		wg.Go(func() {
			if err := rep.Flush(ctx); err != nil {
				e.stats.flushErrors.Add(1)
			}
		})
	}
	wg.Wait()

	f := &e.feed
	stopped := crashed.Load()
	last := seq.Load()
	for i, d := range ds {
		r := res[i]
		switch {
		case !r.done:
			f.pending = append(f.pending, d)
		case r.err != nil:
			e.stats.nacks++
			f.lastErr[d.pub] = r.err.Error()
			f.pending = append(f.pending, d)
		case r.afterCrash, stopped && r.seq > last-crashAckLoss, e.rng.Float64() < ackLossRate:
			e.stats.ackLost++
			f.pending = append(f.pending, d)
		default:
			f.acked[d.pub] = true
		}
	}
	return stopped
}
