package chaos

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// recorder is the application: it counts every callback by "TYPE id" (and
// the plan reached, for OnEntitlementPlanChanged) and notices callbacks
// for the same resource running at the same time.
type recorder struct {
	mu      sync.Mutex
	counts  map[string]int
	running map[string]bool
	overlap []string
	total   int
}

func newRecorder() *recorder {
	return &recorder{counts: map[string]int{}, running: map[string]bool{}}
}

func (r *recorder) handler() marketplace.Handler {
	return marketplace.HandlerFunc(func(ctx context.Context, c *marketplace.Change) error {
		res := testenv.ResourceOf(c)
		k := key(c.Type, res.ID)
		if c.Type == events.TypeEntitlementPlanChanged {
			k = planKey(res.ID, c.Entitlement.Plan)
		}
		resource := res.Kind.String() + ":" + res.ID
		r.mu.Lock()
		if r.running[resource] {
			r.overlap = append(r.overlap, fmt.Sprintf("%s while another callback for %s ran", k, resource))
		}
		r.running[resource] = true
		r.mu.Unlock()

		runtime.Gosched() // the application's work: let another callback in, if the SDK would

		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.running, resource)
		r.counts[k]++
		r.total++
		return nil
	})
}

func key(t events.Type, id string) string { return string(t) + " " + id }

func planKey(id, plan string) string {
	return string(events.TypeEntitlementPlanChanged) + " " + id + " " + plan
}

// expectations holds, per callback key, how many times the scenario's
// changes make it fire: a span, so that a key expected by two changes adds
// up. Every span is exact today; the request callbacks of entitlements the
// processor approves used to be "at most once", until the processor began
// committing what it observed before acting at Google.
type expectations map[string]*span

type span struct{ min, max int }

func (x expectations) add(k string, min, max int) {
	s := x[k]
	if s == nil {
		s = &span{}
		x[k] = s
	}
	s.min += min
	s.max += max
}

func (x expectations) once(t events.Type, id string) { x.add(key(t, id), 1, 1) }

// compare lists every key whose count is outside its span, and every
// callback nobody expected.
func (x expectations) compare(counts map[string]int) []string {
	var out []string
	for k, s := range x {
		if n := counts[k]; n < s.min || n > s.max {
			out = append(out, fmt.Sprintf("callback %s fired %d times, want %s", k, n, s))
		}
	}
	for k, n := range counts {
		if x[k] == nil {
			out = append(out, fmt.Sprintf("callback %s fired %d times, want 0", k, n))
		}
	}
	sort.Strings(out)
	return out
}

func (s *span) String() string {
	if s.min == s.max {
		return fmt.Sprint(s.min)
	}
	return fmt.Sprintf("%d to %d", s.min, s.max)
}
