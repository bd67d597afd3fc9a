package marketplacetest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ReportedOperation is an operation services.report accepted.
type ReportedOperation struct {
	OperationID   string
	OperationName string
	ConsumerID    string
	Start, End    time.Time
	Labels        map[string]string
	UserLabels    map[string]string
	Metrics       []ReportedMetric
	ReportedAt    time.Time // the emulator clock when it was accepted
}

// ReportedMetric is one metric value of a ReportedOperation. Start and End
// are the value's own interval, or the operation's when the value has none.
type ReportedMetric struct {
	Name       string
	Labels     map[string]string
	Start, End time.Time
	Int64      int64
	Double     float64
	IsDouble   bool // the value was a doubleValue (other kinds count as neither)
}

// ViolationKind is a kind of double billing the detector flags.
type ViolationKind string

const (
	// DuplicateOperation: an operationId accepted again for different
	// usage (another consumer, interval, metric, value or label). One of
	// the two is billed under the other's id: Service Control cannot tell
	// them apart. An identical resend (same id, same content, as after a
	// lost response) is not a violation: see Resends.
	DuplicateOperation ViolationKind = "DuplicateOperation"
	// OverlappingUsage: two accepted operations bill the same consumer,
	// metric, metric labels and userLabels for overlapping [start, end)
	// intervals.
	OverlappingUsage ViolationKind = "OverlappingUsage"
)

// Violation is a double billing the detector saw in accepted reports.
type Violation struct {
	Kind             ViolationKind
	OperationID      string // the later operation
	OtherOperationID string // the earlier operation it collides with
	ConsumerID       string
	Metric           string // OverlappingUsage only
	Start, End       time.Time
}

type injectedReportError struct {
	code    int32
	message string
}

type usageInterval struct {
	start, end time.Time
	opID       string
}

// serviceControl is the emulated Service Control state. Guarded by
// Server.mu.
type serviceControl struct {
	checkErrors  map[string]string
	reportErrors map[string]injectedReportError
	accepted     []ReportedOperation
	acceptedIDs  map[string]string // operationId → content fingerprint
	resends      []ReportedOperation
	intervals    map[string][]usageInterval
	violations   []Violation
	checkCalls   map[string]int
	checkedIDs   map[string]bool     // operationIds services.check answered
	unchecked    []ReportedOperation // accepted without a check of their id
	reportCalls  int
}

func (sc *serviceControl) init() {
	sc.checkErrors = map[string]string{}
	sc.reportErrors = map[string]injectedReportError{}
	sc.acceptedIDs = map[string]string{}
	sc.intervals = map[string][]usageInterval{}
	sc.checkCalls = map[string]int{}
	sc.checkedIDs = map[string]bool{}
}

// SetCheckError makes services.check for consumerID answer a CheckError
// with code (any CheckError.Code value, e.g. "BILLING_DISABLED",
// "SERVICE_NOT_ACTIVATED", "PROJECT_DELETED", "SERVICE_STATUS_UNAVAILABLE")
// until ClearCheckError. For SERVICE_NOT_ACTIVATED, BILLING_DISABLED and
// PROJECT_DELETED, services.report also refuses the consumer's operations
// (reportError FAILED_PRECONDITION): the customer is not charged.
func (s *Server) SetCheckError(consumerID, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sc.checkErrors[canonicalConsumer(consumerID)] = code
}

// ClearCheckError removes the check error set for consumerID.
func (s *Server) ClearCheckError(consumerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sc.checkErrors, canonicalConsumer(consumerID))
}

// InjectReportError makes the next services.report of operationID fail with
// a reportError of that google.rpc.Code and message (once).
func (s *Server) InjectReportError(operationID string, code int32, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sc.reportErrors[operationID] = injectedReportError{code: code, message: message}
}

// Reports returns every operation services.report accepted, in order.
func (s *Server) Reports() []ReportedOperation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReportedOperation, len(s.sc.accepted))
	for i, op := range s.sc.accepted {
		op.Labels = maps.Clone(op.Labels)
		op.UserLabels = maps.Clone(op.UserLabels)
		op.Metrics = slices.Clone(op.Metrics)
		for j := range op.Metrics {
			op.Metrics[j].Labels = maps.Clone(op.Metrics[j].Labels)
		}
		out[i] = op
	}
	return out
}

// BilledTotal is the sum of the accepted int64 values of metric for
// consumerID, double billing included.
func (s *Server) BilledTotal(consumerID, metric string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	for _, op := range s.sc.accepted {
		if op.ConsumerID != consumerID {
			continue
		}
		for _, m := range op.Metrics {
			if m.Name == metric && !m.IsDouble {
				sum += m.Int64
			}
		}
	}
	return sum
}

// Resends returns the operations that repeated an accepted operation
// exactly (same id and content): deduplicated, billed once, not in Reports.
func (s *Server) Resends() []ReportedOperation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sc.resends)
}

// fingerprint is the billing content of an operation: what must not differ
// between two operations with one id.
func fingerprint(op ReportedOperation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%s\x00%s", op.ConsumerID,
		op.Start.UTC().Format(time.RFC3339Nano), op.End.UTC().Format(time.RFC3339Nano),
		canonicalLabels(op.Labels), canonicalLabels(op.UserLabels))
	ms := make([]string, 0, len(op.Metrics))
	for _, m := range op.Metrics {
		ms = append(ms, fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d\x00%v\x00%t", m.Name, canonicalLabels(m.Labels),
			m.Start.UTC().Format(time.RFC3339Nano), m.End.UTC().Format(time.RFC3339Nano), m.Int64, m.Double, m.IsDouble))
	}
	slices.Sort(ms)
	for _, m := range ms {
		b.WriteString("\x01")
		b.WriteString(m)
	}
	return b.String()
}

// Violations returns what the double-billing detector flagged, in order.
func (s *Server) Violations() []Violation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sc.violations)
}

// CheckCalls is how many services.check calls for consumerID the emulator
// answered (faulted calls excluded).
func (s *Server) CheckCalls(consumerID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sc.checkCalls[consumerID]
}

// UncheckedReports returns the accepted operations (exact resends
// included) whose operationId no services.check call carried before they
// were accepted. Google's usage
// guidance is to check each operation with the id it is then reported
// under.
func (s *Server) UncheckedReports() []ReportedOperation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sc.unchecked)
}

// ReportCalls is how many services.report calls the emulator answered
// (faulted calls excluded).
func (s *Server) ReportCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sc.reportCalls
}

// acceptLocked records an accepted operation and runs the double-billing
// detector on it.
//
// An operation whose id was accepted before with the same content is a
// resend: it is deduplicated (billed once) and kept in Resends. Service
// Control's reference recommends UUID version 5 ids exactly so that an
// operation "computed from existing information" can be deduplicated, and a
// client that lost a response can only resend the same operation; billing it
// twice would make every lost response a double charge. Whether production
// Google deduplicates is not documented (google-apis.md §4.3): this is the
// behaviour the reference implies, and Resends lets tests see every resend.
func (s *Server) acceptLocked(op ReportedOperation) {
	if !s.sc.checkedIDs[op.OperationID] {
		s.sc.unchecked = append(s.sc.unchecked, op)
	}
	fp := fingerprint(op)
	if prev, ok := s.sc.acceptedIDs[op.OperationID]; ok {
		if prev == fp {
			s.sc.resends = append(s.sc.resends, op)
			return
		}
		s.sc.accepted = append(s.sc.accepted, op)
		s.sc.violations = append(s.sc.violations, Violation{
			Kind: DuplicateOperation, OperationID: op.OperationID, OtherOperationID: op.OperationID,
			ConsumerID: op.ConsumerID, Start: op.Start, End: op.End,
		})
		return
	}
	s.sc.accepted = append(s.sc.accepted, op)
	s.sc.acceptedIDs[op.OperationID] = fp
	user := canonicalLabels(op.UserLabels)
	for _, m := range op.Metrics {
		key := op.ConsumerID + "\x00" + m.Name + "\x00" + canonicalLabels(m.Labels) + "\x00" + user
		for _, iv := range s.sc.intervals[key] {
			if overlaps(iv.start, iv.end, m.Start, m.End) {
				s.sc.violations = append(s.sc.violations, Violation{
					Kind: OverlappingUsage, OperationID: op.OperationID, OtherOperationID: iv.opID,
					ConsumerID: op.ConsumerID, Metric: m.Name, Start: m.Start, End: m.End,
				})
				break
			}
		}
		s.sc.intervals[key] = append(s.sc.intervals[key], usageInterval{m.Start, m.End, op.OperationID})
	}
}

// overlaps reports whether [a0, a1) and [b0, b1) share an instant; an empty
// interval overlaps an interval that contains its instant, or an equal one.
func overlaps(a0, a1, b0, b1 time.Time) bool {
	if a0.Equal(a1) || b0.Equal(b1) {
		if a0.Equal(b0) {
			return true
		}
		if a0.Equal(a1) {
			return !a0.Before(b0) && a0.Before(b1)
		}
		return !b0.Before(a0) && b0.Before(a1)
	}
	return a0.Before(b1) && b0.Before(a1)
}
