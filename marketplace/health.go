package marketplace

import (
	"sync"
	"time"
)

// Health is how receiving is going, for a readiness check and the operator
// console.
type Health struct {
	Running     bool      // Run is running (receiving, or serving push)
	Pull        bool      // Run was given a subscription
	Since       time.Time // when Run started; zero if it is not running
	LastMessage time.Time // when the last message was handled; zero if none
	LastError   string    // the last message's failure or the receive error; "" if none since
	LastErrorAt time.Time
	InFlight    int   // messages being handled now
	Handled     int64 // messages acked since the processor was made
	Failed      int64 // messages nacked (to be redelivered)
}

// Health reports how receiving is going. It reads no store. LastError is
// the last failure since Run last started (or since the processor was
// made): compare LastErrorAt with LastMessage to tell whether receiving has
// recovered since. Times are on the processor's clock (Config.Clock).
func (p *Processor) Health() Health {
	h := p.health.snapshot()
	p.life.mu.Lock()
	h.InFlight = p.life.inFlight
	p.life.mu.Unlock()
	return h
}

// healthState is what Health reports, kept up to date by Run and
// HandleMessage.
type healthState struct {
	mu sync.Mutex
	h  Health
}

func (s *healthState) snapshot() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h
}

// started records that Run started at now, pulling or not; a new Run
// starts without the errors of the last.
func (s *healthState) started(pull bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.Running, s.h.Pull, s.h.Since = true, pull, now
	s.h.LastError, s.h.LastErrorAt = "", time.Time{}
}

// stopped records that Run returned.
func (s *healthState) stopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.Running, s.h.Pull, s.h.Since = false, false, time.Time{}
}

// message records a message handled at now: acknowledged if err is nil,
// nacked otherwise.
func (s *healthState) message(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.h.Handled++
		s.h.LastMessage = now
		return
	}
	s.h.Failed++
	s.h.LastError, s.h.LastErrorAt = err.Error(), now
}

// failed records a failure that is not a message's (the subscription's).
func (s *healthState) failed(err error, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.LastError, s.h.LastErrorAt = err.Error(), now
}
