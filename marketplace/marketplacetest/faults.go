package marketplacetest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// Method names one API method the emulator serves, for faults and call
// counts.
type Method string

// The methods of cloudcommerceprocurement/v1 and servicecontrol/v1 the
// emulator serves. The values are the methods' discovery ids.
const (
	MethodAccountsGet                   Method = "cloudcommerceprocurement.providers.accounts.get"
	MethodAccountsList                  Method = "cloudcommerceprocurement.providers.accounts.list"
	MethodAccountsApprove               Method = "cloudcommerceprocurement.providers.accounts.approve"
	MethodAccountsReject                Method = "cloudcommerceprocurement.providers.accounts.reject"
	MethodAccountsReset                 Method = "cloudcommerceprocurement.providers.accounts.reset"
	MethodEntitlementsGet               Method = "cloudcommerceprocurement.providers.entitlements.get"
	MethodEntitlementsList              Method = "cloudcommerceprocurement.providers.entitlements.list"
	MethodEntitlementsApprove           Method = "cloudcommerceprocurement.providers.entitlements.approve"
	MethodEntitlementsReject            Method = "cloudcommerceprocurement.providers.entitlements.reject"
	MethodEntitlementsApprovePlanChange Method = "cloudcommerceprocurement.providers.entitlements.approvePlanChange"
	MethodEntitlementsRejectPlanChange  Method = "cloudcommerceprocurement.providers.entitlements.rejectPlanChange"
	MethodEntitlementsPatch             Method = "cloudcommerceprocurement.providers.entitlements.patch"
	MethodEntitlementsSuspend           Method = "cloudcommerceprocurement.providers.entitlements.suspend"
	MethodServicesCheck                 Method = "servicecontrol.services.check"
	MethodServicesReport                Method = "servicecontrol.services.report"
)

// FaultKind is what an injected fault does to a call.
type FaultKind int

const (
	// FaultStatus answers Fault.Status (default 500) with Google's error
	// body, without performing the call.
	FaultStatus FaultKind = iota + 1
	// FaultRateLimit answers 429 RESOURCE_EXHAUSTED with a Retry-After
	// header of Fault.RetryAfter in whole seconds (at least 1).
	FaultRateLimit
	// FaultLatency waits Fault.Latency (real time), then performs the call.
	FaultLatency
	// FaultTimeout holds the call for Fault.Latency (default 30 s; sooner if
	// the client gives up or the server closes) and answers 504
	// DEADLINE_EXCEEDED without performing it.
	FaultTimeout
	// FaultLostResponse performs the call (state changes, events publish)
	// and then answers 503 UNAVAILABLE, so the client cannot know.
	FaultLostResponse
)

// Fault is a failure injected into matching API calls.
type Fault struct {
	Method     Method        // "" = every method
	Kind       FaultKind     //
	Status     int           // FaultStatus: 500, 503, ...
	RetryAfter time.Duration // FaultRateLimit
	Latency    time.Duration // FaultLatency / FaultTimeout (real time, not the emulator clock)
	Times      int           // how many calls it hits; 0 = 1; -1 = until cleared
	Rate       float64       // 0 = every matching call; else the probability per call (seeded)
}

type faults struct {
	active []*activeFault
}

type activeFault struct {
	Fault
	left int // -1 = unlimited
}

// InjectFault adds a fault. Faults are matched in the order injected; the
// first matching one with calls left applies.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := f.Times
	if left == 0 {
		left = 1
	}
	s.flt.active = append(s.flt.active, &activeFault{Fault: f, left: left})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flt.active = nil
}

// Calls reports how many HTTP calls reached method, faulted ones included.
func (s *Server) Calls(method Method) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// takeFaultLocked counts the call and returns the fault that applies, if any.
func (s *Server) takeFaultLocked(m Method) *Fault {
	s.calls[m]++
	for i, af := range s.flt.active {
		if af.Method != "" && af.Method != m {
			continue
		}
		if af.Rate > 0 && s.rng.Float64() >= af.Rate {
			continue
		}
		f := af.Fault
		if af.left > 0 {
			af.left--
			if af.left == 0 {
				s.flt.active = append(s.flt.active[:i:i], s.flt.active[i+1:]...)
			}
		}
		return &f
	}
	return nil
}

// faultMiddleware counts calls and applies injected faults before the API
// handler runs.
func (s *Server) faultMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := parseRoute(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		f := s.takeFaultLocked(rt.method)
		s.mu.Unlock()
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		switch f.Kind {
		case FaultStatus:
			code := f.Status
			if code == 0 {
				code = http.StatusInternalServerError
			}
			writeError(w, r, code, statusForHTTP(code), "Injected fault.")
		case FaultRateLimit:
			secs := int((f.RetryAfter + time.Second - 1) / time.Second)
			if secs < 1 {
				secs = 1
			}
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, r, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests' of service.")
		case FaultLatency:
			if !s.sleep(r, f.Latency) {
				return
			}
			next.ServeHTTP(w, r)
		case FaultTimeout:
			d := f.Latency
			if d <= 0 {
				d = 30 * time.Second
			}
			if !s.sleep(r, d) {
				return
			}
			writeError(w, r, http.StatusGatewayTimeout, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
		case FaultLostResponse:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			writeError(w, r, http.StatusServiceUnavailable, "UNAVAILABLE", "The service is currently unavailable.")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// sleep waits d, unless the client goes away or the server closes; it
// reports whether the whole time passed.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

// statusForHTTP maps an HTTP status to the canonical google.rpc.Code name
// Google's front end pairs with it.
func statusForHTTP(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	default:
		if code >= 500 {
			return "INTERNAL"
		}
		return "UNKNOWN"
	}
}
