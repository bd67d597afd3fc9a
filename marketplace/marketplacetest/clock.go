package marketplacetest

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClockBackwards is the error of Clock.Advance with a negative duration
// and of Clock.Set with a time before the clock's. The emulator's time never
// goes back: updateTimes, token lifetimes and usage windows are read from it.
var ErrClockBackwards = errors.New("marketplacetest: the clock cannot go backwards")

// Clock is a manual clock: it moves only when told to. Emulated state and
// tokens read it, and tests hand its Now to the code under test so both
// agree on the time without sleeping.
type Clock struct {
	mu       sync.Mutex
	now      time.Time
	onChange func()
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and, for a server's clock, runs the
// server's scheduler before returning. It returns the new time. A negative
// d changes nothing: Advance returns the current time and an error wrapping
// ErrClockBackwards (it never panics, so that a computed duration cannot
// bring a long-running emulator down).
func (c *Clock) Advance(d time.Duration) (time.Time, error) {
	c.mu.Lock()
	if d < 0 {
		now := c.now
		c.mu.Unlock()
		return now, fmt.Errorf("marketplacetest: advance the clock by %v: %w", d, ErrClockBackwards)
	}
	c.now = c.now.Add(d)
	now, hook := c.now, c.onChange
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return now, nil
}

// Set moves the clock to t; t before the current time is refused with an
// error wrapping ErrClockBackwards. For a server's clock it runs the
// server's scheduler before returning.
func (c *Clock) Set(t time.Time) error {
	c.mu.Lock()
	if t.Before(c.now) {
		now := c.now
		c.mu.Unlock()
		return fmt.Errorf("marketplacetest: set the clock to %v, before its time %v: %w", t, now, ErrClockBackwards)
	}
	c.now = t
	hook := c.onChange
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

// DefaultFollowInterval is how often Follow moves the clock when given no
// interval.
const DefaultFollowInterval = 50 * time.Millisecond

// Follow moves the clock forward along with wall (time.Now when nil), every
// interval (DefaultFollowInterval when not positive), until stop is called:
// time then passes as in production (tokens expire, usage windows close),
// and Advance and Set can still make it jump ahead.
//
// Each step adds how far wall moved since its previous reading. A reading
// that is not after the previous one (a stalled clock, or one stepped back)
// adds nothing, and the next step counts from it, so the clock neither
// goes back nor catches up later. time.Now carries the monotonic clock, so
// by default the steps measure elapsed time, whatever happens to the wall
// clock, and however late the goroutine runs on a loaded machine.
//
// stop ends the goroutine and waits for it; calling it again does nothing.
func (c *Clock) Follow(wall func() time.Time, interval time.Duration) (stop func()) {
	if wall == nil {
		wall = time.Now
	}
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		// Readings are taken here, never from the ticker's values: those
		// are the ticks' scheduled times, which trail the moment this
		// goroutine runs by an amount that varies with the machine's load.
		last := wall()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			now := wall()
			if d := now.Sub(last); d > 0 {
				_, _ = c.Advance(d) // d > 0: cannot fail
			}
			last = now
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

func (c *Clock) setOnChange(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onChange = f
}
