package marketplacetest

// This file serves servicecontrol/v1 services.check and services.report:
// their wire types, the validation Google applies to a request, and the
// answer for each operation. What is accepted is recorded by acceptLocked
// (servicecontrol.go).

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
// services.check and services.report (google-apis.md §4.2), measured on the
// request's protobuf (wire) size (wiresize.go), as Service Control measures
// it: a JSON body can be larger than the request it decodes to.
const maxServiceControlRequest = 1 << 20

// serviceConfigID is the service configuration the emulator reports serving.
const serviceConfigID = "2026-01-05r0"

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
	var req struct {
		Operation              *wireOperation `json:"operation"`
		ServiceConfigID        string         `json:"serviceConfigId"`
		SkipActivationCheck    bool           `json:"skipActivationCheck"`
		RequestProjectSettings bool           `json:"requestProjectSettings"`
	}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if n := checkWireSize(rt.service, req.ServiceConfigID, req.Operation, req.SkipActivationCheck, req.RequestProjectSettings); n > maxServiceControlRequest {
		return nil, invalidArgument("Request payload size exceeds the limit: %d bytes (the request is %d bytes on the wire).", maxServiceControlRequest, n)
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
	start, end, vals, e := parseOperation(op, "operation")
	if e != nil {
		return nil, e
	}
	if e := checkUserLabels(op, "operation"); e != nil {
		return nil, e
	}
	op.ConsumerID = canonicalConsumer(op.ConsumerID) // consumers.go
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
	// A check is answered for its interval, [startTime, endTime), or the
	// instant startTime without endTime (lifecycle.go): a late check of
	// usage from before the end passes, as its report will be accepted.
	if why := s.lifeErrorLocked(op.ConsumerID, start, end, vals); why != "" {
		resp.CheckErrors = []wireCheckError{{
			Code: inactiveCode, Subject: subject,
			Detail: fmt.Sprintf("Service %s is not activated for %s: %s.", rt.service, subject, why),
			Status: &wireStatus{Code: checkErrorStatus(inactiveCode), Message: inactiveCode},
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
	var req struct {
		Operations      []wireOperation `json:"operations"`
		ServiceConfigID string          `json:"serviceConfigId"`
	}
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if n := reportWireSize(rt.service, req.ServiceConfigID, req.Operations); n > maxServiceControlRequest {
		return nil, invalidArgument("Request payload size exceeds the limit: %d bytes (the request is %d bytes on the wire).", maxServiceControlRequest, n)
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
		if e := s.checkValueTypes(&req.Operations[i], fmt.Sprintf("operations[%d]", i)); e != nil {
			return nil, e
		}
		if e := checkUserLabels(&req.Operations[i], fmt.Sprintf("operations[%d]", i)); e != nil {
			return nil, e
		}
		req.Operations[i].ConsumerID = canonicalConsumer(req.Operations[i].ConsumerID) // consumers.go
		ps[i] = parsed{start, end, vals}
	}
	s.sc.reportCalls++
	resp := wireReportResponse{ServiceConfigID: serviceConfigID, ServiceRolloutID: serviceConfigID}
	for i := range req.Operations {
		op, p := &req.Operations[i], ps[i]
		if re := s.reportErrorLocked(rt.service, metrics, op, p.start, p.end, p.vals); re != nil {
			resp.ReportErrors = append(resp.ReportErrors, *re)
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

// reportErrorLocked is the reportError services.report answers for one
// operation of service (whose metrics are given), or nil when it accepts it.
func (s *Server) reportErrorLocked(service string, metrics []string, op *wireOperation, start, end time.Time, vals []ReportedMetric) *wireReportError {
	fail := func(opID string, code int32, format string, args ...any) *wireReportError {
		return &wireReportError{OperationID: opID, Status: wireStatus{Code: code, Message: fmt.Sprintf(format, args...)}}
	}
	if inj, ok := s.sc.reportErrors[op.OperationID]; ok && op.OperationID != "" {
		delete(s.sc.reportErrors, op.OperationID)
		return fail(op.OperationID, inj.code, "%s", inj.message)
	}
	switch {
	case op.OperationID == "":
		return fail("", rpcInvalidArgument, "operation_id is required.")
	case op.ConsumerID == "":
		return fail(op.OperationID, rpcInvalidArgument, "consumer_id is required.")
	case start.IsZero() || end.IsZero():
		return fail(op.OperationID, rpcInvalidArgument, "start_time and end_time are required.")
	case end.Before(start):
		return fail(op.OperationID, rpcInvalidArgument, "end_time must not be before start_time.")
	case !s.knownConsumerLocked(op.ConsumerID):
		return fail(op.OperationID, rpcInvalidArgument, "Consumer %q is not a consumer of service %s.", shorten(op.ConsumerID, 64), service)
	}
	if code := s.sc.checkErrors[op.ConsumerID]; stopServingCodes[code] {
		return fail(op.OperationID, rpcFailedPrecondition, "%s: consumer %s cannot be charged.", code, shorten(op.ConsumerID, 64))
	}
	// Inferred: the reportError for usage outside the consumer's life is
	// the one the emulator answers for a stop-serving check error
	// (FAILED_PRECONDITION), as Google's pages say only that such usage is
	// not charged (lifecycle.go).
	if why := s.lifeErrorLocked(op.ConsumerID, start, end, vals); why != "" {
		return fail(op.OperationID, rpcFailedPrecondition, "%s: consumer %s cannot be charged: %s.", inactiveCode, shorten(op.ConsumerID, 64), why)
	}
	for _, v := range vals {
		if !slices.Contains(metrics, v.Name) {
			return fail(op.OperationID, rpcInvalidArgument, "Unknown metric %q for service %s.", shorten(v.Name, 100), service)
		}
	}
	return nil
}
