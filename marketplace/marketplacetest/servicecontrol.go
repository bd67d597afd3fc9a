package marketplacetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxServiceControlRequest is the documented request size limit of
// services.check and services.report.
const maxServiceControlRequest = 1 << 20

// serviceConfigID is the service configuration the emulator reports serving.
const serviceConfigID = "2026-01-05r0"

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
	s.sc.checkErrors[consumerID] = code
}

// ClearCheckError removes the check error set for consumerID.
func (s *Server) ClearCheckError(consumerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sc.checkErrors, consumerID)
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

// Wire types of servicecontrol/v1.
type wireOperation struct {
	OperationID     string               `json:"operationId"`
	OperationName   string               `json:"operationName"`
	ConsumerID      string               `json:"consumerId"`
	StartTime       string               `json:"startTime"`
	EndTime         string               `json:"endTime"`
	Labels          map[string]string    `json:"labels"`
	MetricValueSets []wireMetricValueSet `json:"metricValueSets"`
	LogEntries      []json.RawMessage    `json:"logEntries"`
	UserLabels      map[string]string    `json:"userLabels"`
	Importance      string               `json:"importance"`
	QuotaProperties json.RawMessage      `json:"quotaProperties"`
	Resources       []json.RawMessage    `json:"resources"`
	TraceSpans      []json.RawMessage    `json:"traceSpans"`
}

type wireMetricValueSet struct {
	MetricName   string            `json:"metricName"`
	MetricValues []wireMetricValue `json:"metricValues"`
}

type wireMetricValue struct {
	Labels            map[string]string `json:"labels"`
	StartTime         string            `json:"startTime"`
	EndTime           string            `json:"endTime"`
	BoolValue         *bool             `json:"boolValue"`
	Int64Value        json.RawMessage   `json:"int64Value"`
	DoubleValue       json.RawMessage   `json:"doubleValue"`
	StringValue       *string           `json:"stringValue"`
	DistributionValue json.RawMessage   `json:"distributionValue"`
	MoneyValue        json.RawMessage   `json:"moneyValue"`
}

type wireStatus struct {
	Code    int32  `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

type wireCheckError struct {
	Code    string      `json:"code"`
	Subject string      `json:"subject,omitempty"`
	Detail  string      `json:"detail,omitempty"`
	Status  *wireStatus `json:"status,omitempty"`
}

type wireCheckResponse struct {
	OperationID      string           `json:"operationId,omitempty"`
	CheckErrors      []wireCheckError `json:"checkErrors,omitempty"`
	CheckInfo        *wireCheckInfo   `json:"checkInfo,omitempty"`
	ServiceConfigID  string           `json:"serviceConfigId,omitempty"`
	ServiceRolloutID string           `json:"serviceRolloutId,omitempty"`
}

type wireCheckInfo struct {
	ConsumerInfo *wireConsumerInfo `json:"consumerInfo,omitempty"`
}

type wireConsumerInfo struct {
	ProjectNumber  string `json:"projectNumber,omitempty"`
	Type           string `json:"type,omitempty"`
	ConsumerNumber string `json:"consumerNumber,omitempty"`
}

type wireReportError struct {
	OperationID string     `json:"operationId,omitempty"`
	Status      wireStatus `json:"status"`
}

type wireReportResponse struct {
	ReportErrors     []wireReportError `json:"reportErrors,omitempty"`
	ServiceConfigID  string            `json:"serviceConfigId,omitempty"`
	ServiceRolloutID string            `json:"serviceRolloutId,omitempty"`
}

// google.rpc.Code values used in reportErrors.
const (
	rpcInvalidArgument    = 3
	rpcFailedPrecondition = 9
)

// stopServingCodes are the check errors after which Marketplace says the
// customer must not be charged.
var stopServingCodes = map[string]bool{
	"SERVICE_NOT_ACTIVATED": true, "BILLING_DISABLED": true, "PROJECT_DELETED": true,
}

// checkErrorStatus maps a CheckError code to the google.rpc.Code of its
// status.
func checkErrorStatus(code string) int32 {
	switch {
	case strings.HasSuffix(code, "_UNAVAILABLE"), code == "LOAD_SHEDDING":
		return 14 // UNAVAILABLE
	case code == "NOT_FOUND", code == "PROJECT_DELETED":
		return 5
	case code == "RESOURCE_EXHAUSTED", code == "BUDGET_EXCEEDED":
		return 8
	case code == "PROJECT_INVALID", code == "CONSUMER_INVALID", strings.HasPrefix(code, "API_KEY_"):
		return 3
	default:
		return 7 // PERMISSION_DENIED
	}
}

func (s *Server) knownServiceLocked(name string) ([]string, bool) {
	m, ok := s.cfg.services[name]
	return m, ok
}

// parseOperation checks what makes a whole request invalid: timestamps
// that do not parse, int64 values that are not int64, and one metric given
// twice with identical labels. path names the operation in messages.
func parseOperation(op *wireOperation, path string) (start, end time.Time, vals []ReportedMetric, e *apiError) {
	parseTS := func(v, field string) (time.Time, *apiError) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, invalidArgument("Invalid value at '%s.%s' (type.googleapis.com/google.protobuf.Timestamp), %q", path, field, shorten(v, 40))
		}
		return t.UTC(), nil
	}
	if start, e = parseTS(op.StartTime, "start_time"); e != nil {
		return
	}
	if end, e = parseTS(op.EndTime, "end_time"); e != nil {
		return
	}
	seen := map[string]bool{}
	for i, set := range op.MetricValueSets {
		for j, mv := range set.MetricValues {
			vpath := fmt.Sprintf("%s.metric_value_sets[%d].metric_values[%d]", path, i, j)
			key := set.MetricName + "\x00" + canonicalLabels(mv.Labels)
			if seen[key] {
				e = invalidArgument("Request contains an invalid argument: metric %q appears more than once with the same labels in operation %q.", shorten(set.MetricName, 100), shorten(op.OperationID, 64))
				return
			}
			seen[key] = true
			rm := ReportedMetric{Name: set.MetricName, Labels: mv.Labels}
			var ae *apiError
			if rm.Start, ae = parseTS(mv.StartTime, vpath+".start_time"); ae != nil {
				e = ae
				return
			}
			if rm.End, ae = parseTS(mv.EndTime, vpath+".end_time"); ae != nil {
				e = ae
				return
			}
			if rm.Start.IsZero() {
				rm.Start = start
			}
			if rm.End.IsZero() {
				rm.End = end
			}
			if len(mv.Int64Value) > 0 {
				raw := strings.Trim(string(mv.Int64Value), `"`)
				n, err := strconv.ParseInt(raw, 10, 64)
				if err != nil {
					e = invalidArgument("Invalid value at '%s.int64_value' (TYPE_INT64), %s", vpath, shorten(string(mv.Int64Value), 40))
					return
				}
				rm.Int64 = n
			} else if len(mv.DoubleValue) > 0 {
				raw := strings.Trim(string(mv.DoubleValue), `"`)
				f, err := strconv.ParseFloat(raw, 64)
				if err != nil || math.IsNaN(f) {
					e = invalidArgument("Invalid value at '%s.double_value' (TYPE_DOUBLE), %s", vpath, shorten(string(mv.DoubleValue), 40))
					return
				}
				rm.Double, rm.IsDouble = f, true
			}
			vals = append(vals, rm)
		}
	}
	return start, end, vals, nil
}

func canonicalLabels(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
		b.WriteByte('\x00')
	}
	return b.String()
}

func (s *Server) serviceCheck(rt route, body []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.knownServiceLocked(rt.service); !ok {
		return nil, &apiError{403, "PERMISSION_DENIED", fmt.Sprintf("Permission 'servicemanagement.services.check' denied on service '%s'.", shorten(rt.service, 100))}
	}
	if len(body) > maxServiceControlRequest {
		return nil, invalidArgument("Request payload size exceeds the limit: %d bytes.", maxServiceControlRequest)
	}
	var req struct {
		Operation              *wireOperation `json:"operation"`
		ServiceConfigID        string         `json:"serviceConfigId"`
		SkipActivationCheck    bool           `json:"skipActivationCheck"`
		RequestProjectSettings bool           `json:"requestProjectSettings"`
	}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	op := req.Operation
	if op == nil {
		return nil, invalidArgument("Request contains an invalid argument: operation is required.")
	}
	switch {
	case op.OperationID == "":
		return nil, invalidArgument("Request contains an invalid argument: operation.operation_id is required.")
	case op.ConsumerID == "":
		return nil, invalidArgument("Request contains an invalid argument: operation.consumer_id is required.")
	case op.StartTime == "":
		return nil, invalidArgument("Request contains an invalid argument: operation.start_time is required.")
	}
	if _, _, _, e := parseOperation(op, "operation"); e != nil {
		return nil, e
	}
	s.sc.checkCalls[op.ConsumerID]++
	s.sc.checkedIDs[op.OperationID] = true
	resp := wireCheckResponse{OperationID: op.OperationID, ServiceConfigID: serviceConfigID, ServiceRolloutID: serviceConfigID}
	subject := consumerSubject(op.ConsumerID)
	if !s.knownConsumerLocked(op.ConsumerID) {
		resp.CheckErrors = []wireCheckError{{
			Code: "CONSUMER_INVALID", Subject: subject,
			Detail: fmt.Sprintf("Consumer %q is not a consumer of service %s.", shorten(op.ConsumerID, 64), rt.service),
			Status: &wireStatus{Code: rpcInvalidArgument, Message: "CONSUMER_INVALID"},
		}}
		return resp, nil
	}
	if code, ok := s.sc.checkErrors[op.ConsumerID]; ok {
		resp.CheckErrors = []wireCheckError{{
			Code: code, Subject: subject,
			Detail: fmt.Sprintf("%s for %s on service %s.", code, subject, rt.service),
			Status: &wireStatus{Code: checkErrorStatus(code), Message: code},
		}}
		return resp, nil
	}
	if n, ok := strings.CutPrefix(op.ConsumerID, "project_number:"); ok {
		resp.CheckInfo = &wireCheckInfo{ConsumerInfo: &wireConsumerInfo{ProjectNumber: n, Type: "PROJECT", ConsumerNumber: n}}
	}
	return resp, nil
}

func consumerSubject(consumerID string) string {
	if n, ok := strings.CutPrefix(consumerID, "project_number:"); ok {
		return "project:" + n
	}
	return consumerID
}

func (s *Server) serviceReport(rt route, body []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics, ok := s.knownServiceLocked(rt.service)
	if !ok {
		return nil, &apiError{403, "PERMISSION_DENIED", fmt.Sprintf("Permission 'servicemanagement.services.report' denied on service '%s'.", shorten(rt.service, 100))}
	}
	if len(body) > maxServiceControlRequest {
		return nil, invalidArgument("Request payload size exceeds the limit: %d bytes.", maxServiceControlRequest)
	}
	var req struct {
		Operations      []wireOperation `json:"operations"`
		ServiceConfigID string          `json:"serviceConfigId"`
	}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	type parsed struct {
		start, end time.Time
		vals       []ReportedMetric
	}
	ps := make([]parsed, len(req.Operations))
	for i := range req.Operations {
		start, end, vals, e := parseOperation(&req.Operations[i], fmt.Sprintf("operations[%d]", i))
		if e != nil {
			return nil, e
		}
		ps[i] = parsed{start, end, vals}
	}
	s.sc.reportCalls++
	resp := wireReportResponse{ServiceConfigID: serviceConfigID, ServiceRolloutID: serviceConfigID}
	fail := func(opID string, code int32, format string, args ...any) {
		resp.ReportErrors = append(resp.ReportErrors, wireReportError{
			OperationID: opID, Status: wireStatus{Code: code, Message: fmt.Sprintf(format, args...)},
		})
	}
	for i := range req.Operations {
		op, p := &req.Operations[i], ps[i]
		if inj, ok := s.sc.reportErrors[op.OperationID]; ok && op.OperationID != "" {
			delete(s.sc.reportErrors, op.OperationID)
			fail(op.OperationID, inj.code, "%s", inj.message)
			continue
		}
		switch {
		case op.OperationID == "":
			fail("", rpcInvalidArgument, "operation_id is required.")
			continue
		case op.ConsumerID == "":
			fail(op.OperationID, rpcInvalidArgument, "consumer_id is required.")
			continue
		case p.start.IsZero() || p.end.IsZero():
			fail(op.OperationID, rpcInvalidArgument, "start_time and end_time are required.")
			continue
		case p.end.Before(p.start):
			fail(op.OperationID, rpcInvalidArgument, "end_time must not be before start_time.")
			continue
		case !s.knownConsumerLocked(op.ConsumerID):
			fail(op.OperationID, rpcInvalidArgument, "Consumer %q is not a consumer of service %s.", shorten(op.ConsumerID, 64), rt.service)
			continue
		}
		if code := s.sc.checkErrors[op.ConsumerID]; stopServingCodes[code] {
			fail(op.OperationID, rpcFailedPrecondition, "%s: consumer %s cannot be charged.", code, shorten(op.ConsumerID, 64))
			continue
		}
		unknown := ""
		for _, v := range p.vals {
			if !slices.Contains(metrics, v.Name) {
				unknown = v.Name
				break
			}
		}
		if unknown != "" {
			fail(op.OperationID, rpcInvalidArgument, "Unknown metric %q for service %s.", shorten(unknown, 100), rt.service)
			continue
		}
		s.acceptLocked(ReportedOperation{
			OperationID:   op.OperationID,
			OperationName: op.OperationName,
			ConsumerID:    op.ConsumerID,
			Start:         p.start,
			End:           p.end,
			Labels:        op.Labels,
			UserLabels:    op.UserLabels,
			Metrics:       p.vals,
			ReportedAt:    s.clock.Now(),
		})
	}
	return resp, nil
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
