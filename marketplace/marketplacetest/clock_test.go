package marketplacetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A negative Advance is refused with an error and leaves the clock alone;
// it used to panic, which took down any process that computed one.
func TestClockAdvanceNegativeIsRefused(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	c := NewClock(start)
	now, err := c.Advance(-time.Nanosecond)
	require.ErrorIs(t, err, ErrClockBackwards)
	assert.True(t, now.Equal(start), "returned %v", now)
	assert.True(t, c.Now().Equal(start), "clock moved to %v", c.Now())

	now, err = c.Advance(time.Hour)
	require.NoError(t, err)
	assert.True(t, now.Equal(start.Add(time.Hour)))
	require.ErrorIs(t, c.Set(start), ErrClockBackwards)
}

// scriptedWall is a wall clock that returns the readings given, one per
// call, then the last one forever; drained is closed once all were read.
type scriptedWall struct {
	mu       sync.Mutex
	readings []time.Time
	drained  chan struct{}
}

func (w *scriptedWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.readings[0]
	if len(w.readings) > 1 {
		w.readings = w.readings[1:]
	} else if w.drained != nil {
		close(w.drained)
		w.drained = nil
	}
	return t
}

// Follow survives a wall clock that stalls and steps back (as a ticker's
// scheduled times do against time.Now on a loaded machine): the clock only
// ever moves forward, by the forward steps of the wall clock.
func TestClockFollowWallClockThatGoesBack(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	w0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	wall := &scriptedWall{drained: make(chan struct{}), readings: []time.Time{
		w0,
		w0.Add(time.Second),              // +1s
		w0.Add(500 * time.Millisecond),   // back 0.5s: nothing
		w0.Add(500 * time.Millisecond),   // stalled: nothing
		w0.Add(2 * time.Second),          // +1.5s
		w0.Add(-time.Hour),               // stepped back an hour: nothing
		w0.Add(-time.Hour + time.Second), // +1s, counted from the step
	}}
	drained := wall.drained
	c := NewClock(start)
	var seen []time.Time
	c.setOnChange(func() { seen = append(seen, c.Now()) }) // only the follower advances it
	stop := c.Follow(wall.now, time.Millisecond)
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not read the wall clock")
	}
	stop()
	stop() // idempotent

	assert.True(t, c.Now().Equal(start.Add(3500*time.Millisecond)), "clock at %v, want start+3.5s", c.Now().Sub(start))
	for i := 1; i < len(seen); i++ {
		assert.False(t, seen[i].Before(seen[i-1]), "clock went back from %v to %v", seen[i-1], seen[i])
	}
}

// The default follows time.Now, and stop ends it: the clock moves while
// following and not after.
func TestClockFollowTimeNow(t *testing.T) {
	c := NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	before := c.Now()
	stop := c.Follow(nil, time.Millisecond)
	require.Eventually(t, func() bool { return c.Now().After(before) }, 10*time.Second, time.Millisecond)
	stop()
	stopped := c.Now()
	time.Sleep(5 * time.Millisecond)
	assert.True(t, c.Now().Equal(stopped), "the clock moved after stop")
	_, err := c.Advance(-time.Second)
	assert.True(t, errors.Is(err, ErrClockBackwards))
}
