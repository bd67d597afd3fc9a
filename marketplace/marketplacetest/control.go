package marketplacetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The control API lets programs in any language drive the emulator over
// HTTP: play the customer, move the clock, mint sign-up tokens and read what
// the code under test did. Requests and responses are JSON with lowerCamel
// keys; errors use Google's shape {"error": {"code", "message", "status"}}.
//
//	POST /control/accounts                           → {"accountId"}
//	POST /control/accounts/{id}:delete
//	POST /control/purchase {accountId?, product?, plan?, offer?, offerDuration?,
//	     offerEndTime?, startTime?, usageBased?, autoApprove?, orderId?} → {"entitlementId", "accountId"}
//	POST /control/entitlements/{id}:requestPlanChange {plan, offer (optional)}
//	POST /control/entitlements/{id}:cancelPlanChange
//	POST /control/entitlements/{id}:cancel {immediate?}
//	POST /control/entitlements/{id}:revertCancellation
//	POST /control/entitlements/{id}:endTerm
//	POST /control/entitlements/{id}:delete
//	POST /control/signupToken {accountId, audience, bad?} → {"token"}
//	POST /control/pushToken {audience, bad?}        → {"token"}
//	POST /control/clock:advance {seconds | duration} → {"now"}
//	GET  /control/clock                              → {"now"}
//	GET  /control/events                             → {"events": [...]}
//	GET  /control/reports                            → {"reports": [...]}
//	GET  /control/violations                         → {"violations": [...]}
//	POST /control/checkErrors {consumerId, code}     (code "" clears)
//	POST /control/gemini:register, /control/gemini:send  (Gemini Enterprise: gemini.go)
//
// Times are RFC 3339 strings. Action routes answer {} on success.

// maxControlBody bounds control request bodies.
const maxControlBody = 1 << 20

func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /control/accounts", s.controlCreateAccount)
	mux.HandleFunc("POST /control/accounts/{action}", s.controlAccountAction)
	mux.HandleFunc("POST /control/purchase", s.controlPurchase)
	mux.HandleFunc("POST /control/entitlements/{action}", s.controlEntitlementAction)
	mux.HandleFunc("POST /control/signupToken", s.controlSignupToken)
	mux.HandleFunc("POST /control/pushToken", s.controlPushToken)
	mux.HandleFunc("POST /control/clock:advance", s.controlAdvanceClock)
	mux.HandleFunc("GET /control/clock", s.controlClock)
	mux.HandleFunc("GET /control/events", s.controlEvents)
	mux.HandleFunc("GET /control/reports", s.controlReports)
	mux.HandleFunc("GET /control/violations", s.controlViolations)
	mux.HandleFunc("POST /control/checkErrors", s.controlCheckErrors)
	s.geminiControlRoutes(mux)
	mux.HandleFunc("/control/", func(w http.ResponseWriter, r *http.Request) {
		writeControlError(w, http.StatusNotFound, "NOT_FOUND",
			fmt.Sprintf("no control route %s %s", r.Method, r.URL.Path))
	})
}

// controlError is an error with the HTTP status and Google status name the
// control API answers with.
type controlError struct {
	code   int
	status string
	msg    string
}

func (e *controlError) Error() string { return e.msg }

func badControlRequest(format string, args ...any) error {
	return &controlError{code: http.StatusBadRequest, status: "INVALID_ARGUMENT", msg: fmt.Sprintf(format, args...)}
}

func writeControlError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"code": code, "message": msg, "status": status},
	})
}

// writeControlResult answers v, or the error mapped to an HTTP status.
func writeControlResult(w http.ResponseWriter, v any, err error) {
	if err != nil {
		var ce *controlError
		switch {
		case errors.As(err, &ce):
			writeControlError(w, ce.code, ce.status, ce.msg)
		case errors.Is(err, ErrNotFound):
			writeControlError(w, http.StatusNotFound, "NOT_FOUND", err.Error())
		case errors.Is(err, ErrWrongState):
			writeControlError(w, http.StatusBadRequest, "FAILED_PRECONDITION", err.Error())
		case errors.Is(err, ErrInvalidParams):
			writeControlError(w, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			writeControlError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		default:
			writeControlError(w, http.StatusInternalServerError, "INTERNAL", err.Error())
		}
		return
	}
	if v == nil {
		v = struct{}{}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// decodeControlBody decodes the JSON body into v. An empty body leaves v
// as is, so actions without parameters accept an empty POST.
func decodeControlBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return badControlRequest("request body: %v", err)
	}
	if dec.More() {
		return badControlRequest("request body: more than one JSON value")
	}
	return nil
}

// splitAction splits "{id}:{verb}".
func splitAction(r *http.Request) (id, verb string, err error) {
	seg := r.PathValue("action")
	i := strings.LastIndexByte(seg, ':')
	if i <= 0 || i == len(seg)-1 {
		return "", "", &controlError{code: http.StatusNotFound, status: "NOT_FOUND",
			msg: fmt.Sprintf("no control route POST %s: want .../{id}:{action}", r.URL.Path)}
	}
	return seg[:i], seg[i+1:], nil
}

func (s *Server) controlCreateAccount(w http.ResponseWriter, r *http.Request) {
	if err := decodeControlBody(w, r, &struct{}{}); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	id, err := s.CreateAccount(r.Context())
	writeControlResult(w, map[string]string{"accountId": id}, err)
}

func (s *Server) controlAccountAction(w http.ResponseWriter, r *http.Request) {
	id, verb, err := splitAction(r)
	if err == nil {
		err = decodeControlBody(w, r, &struct{}{})
	}
	if err == nil {
		switch verb {
		case "delete":
			err = s.DeleteAccount(r.Context(), id)
		default:
			err = &controlError{code: http.StatusNotFound, status: "NOT_FOUND", msg: fmt.Sprintf("unknown account action %q (want delete)", verb)}
		}
	}
	writeControlResult(w, nil, err)
}

type controlPurchaseRequest struct {
	AccountID     string     `json:"accountId"`
	Product       string     `json:"product"`
	Plan          string     `json:"plan"`
	Offer         string     `json:"offer"`
	OfferDuration string     `json:"offerDuration"`
	OfferEndTime  *time.Time `json:"offerEndTime"`
	StartTime     *time.Time `json:"startTime"`
	UsageBased    bool       `json:"usageBased"`
	AutoApprove   bool       `json:"autoApprove"`
	OrderID       string     `json:"orderId"`
}

func (s *Server) controlPurchase(w http.ResponseWriter, r *http.Request) {
	var req controlPurchaseRequest
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	p := PurchaseParams{
		AccountID: req.AccountID, Product: req.Product, Plan: req.Plan, Offer: req.Offer,
		OfferDuration: req.OfferDuration, UsageBased: req.UsageBased, AutoApprove: req.AutoApprove,
		OrderID: req.OrderID,
	}
	if req.OfferEndTime != nil {
		p.OfferEndTime = *req.OfferEndTime
	}
	if req.StartTime != nil {
		p.StartTime = *req.StartTime
	}
	id, err := s.Purchase(r.Context(), p)
	if err != nil {
		writeControlResult(w, nil, err)
		return
	}
	accountID := req.AccountID
	if e, ok := s.Entitlement(id); ok {
		accountID = e.AccountID
	}
	writeControlResult(w, map[string]string{"entitlementId": id, "accountId": accountID}, nil)
}

func (s *Server) controlEntitlementAction(w http.ResponseWriter, r *http.Request) {
	id, verb, err := splitAction(r)
	if err != nil {
		writeControlResult(w, nil, err)
		return
	}
	var req struct {
		Plan      string `json:"plan"`
		Offer     string `json:"offer"`
		Immediate bool   `json:"immediate"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	ctx := r.Context()
	switch verb {
	case "requestPlanChange":
		if req.Plan == "" {
			err = badControlRequest("requestPlanChange needs a plan")
			break
		}
		if req.Offer != "" {
			err = s.RequestOfferChange(ctx, id, req.Plan, req.Offer)
			break
		}
		err = s.RequestPlanChange(ctx, id, req.Plan)
	case "cancelPlanChange":
		err = s.CancelPlanChange(ctx, id)
	case "cancel":
		err = s.Cancel(ctx, id, req.Immediate)
	case "revertCancellation":
		err = s.RevertCancellation(ctx, id)
	case "endTerm":
		err = s.EndTerm(ctx, id)
	case "delete":
		err = s.DeleteEntitlement(ctx, id)
	default:
		err = &controlError{code: http.StatusNotFound, status: "NOT_FOUND", msg: fmt.Sprintf(
			"unknown entitlement action %q (want requestPlanChange, cancelPlanChange, cancel, revertCancellation, endTerm or delete)", verb)}
	}
	writeControlResult(w, nil, err)
}

func (s *Server) controlSignupToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccountID string   `json:"accountId"`
		Audience  string   `json:"audience"`
		Bad       BadToken `json:"bad"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.AccountID == "" || req.Audience == "" {
		writeControlResult(w, nil, badControlRequest("signupToken needs accountId and audience"))
		return
	}
	tok, err := s.signup.mint(TokenParams{Subject: req.AccountID, Audience: req.Audience, Bad: req.Bad})
	if err != nil && req.Bad != "" {
		err = badControlRequest("%v", err)
	}
	writeControlResult(w, map[string]string{"token": tok}, err)
}

func (s *Server) controlPushToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Audience string   `json:"audience"`
		Bad      BadToken `json:"bad"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.Audience == "" {
		writeControlResult(w, nil, badControlRequest("pushToken needs an audience"))
		return
	}
	tok, err := s.push.mint(TokenParams{Audience: req.Audience, Bad: req.Bad})
	if err != nil && req.Bad != "" {
		err = badControlRequest("%v", err)
	}
	writeControlResult(w, map[string]string{"token": tok}, err)
}

func (s *Server) controlAdvanceClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seconds  *float64 `json:"seconds"`
		Duration string   `json:"duration"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	var d time.Duration
	switch {
	case req.Seconds != nil && req.Duration != "":
		writeControlResult(w, nil, badControlRequest("set seconds or duration, not both"))
		return
	case req.Seconds != nil:
		sec := *req.Seconds
		if sec < 0 || math.IsNaN(sec) || sec > float64(math.MaxInt64/int64(time.Second)) {
			writeControlResult(w, nil, badControlRequest("seconds must be between 0 and %d", math.MaxInt64/int64(time.Second)))
			return
		}
		d = time.Duration(sec * float64(time.Second))
	case req.Duration != "":
		var err error
		if d, err = time.ParseDuration(req.Duration); err != nil || d < 0 {
			writeControlResult(w, nil, badControlRequest("duration %s is not a non-negative Go duration such as \"36h\"", strconv.Quote(req.Duration)))
			return
		}
	default:
		writeControlResult(w, nil, badControlRequest("clock:advance needs seconds or duration"))
		return
	}
	now, err := s.clock.Advance(d)
	if err != nil { // not reached: d was checked above; never a panic
		writeControlResult(w, nil, badControlRequest("%v", err))
		return
	}
	writeControlResult(w, map[string]string{"now": now.UTC().Format(time.RFC3339Nano)}, nil)
}

func (s *Server) controlClock(w http.ResponseWriter, r *http.Request) {
	writeControlResult(w, map[string]string{"now": s.clock.Now().UTC().Format(time.RFC3339Nano)}, nil)
}

type controlEvent struct {
	EventID       string          `json:"eventId"`
	EventType     string          `json:"eventType,omitempty"`
	AccountID     string          `json:"accountId,omitempty"`
	EntitlementID string          `json:"entitlementId,omitempty"`
	MessageID     string          `json:"messageId,omitempty"`
	PublishTime   string          `json:"publishTime"`
	Duplicate     bool            `json:"duplicate,omitempty"`
	Data          json.RawMessage `json:"data"`
}

func (s *Server) controlEvents(w http.ResponseWriter, r *http.Request) {
	out := []controlEvent{}
	for _, e := range s.Published() {
		data := json.RawMessage(e.Data)
		if !json.Valid(e.Data) {
			// Never expected: the emulator publishes JSON. Keep the
			// response valid anyway.
			b, _ := json.Marshal(string(e.Data))
			data = b
		}
		out = append(out, controlEvent{
			EventID: e.EventID, EventType: e.EventType, AccountID: e.AccountID,
			EntitlementID: e.EntitlementID, MessageID: e.MessageID,
			PublishTime: e.At.UTC().Format(time.RFC3339Nano), Duplicate: e.Duplicate, Data: data,
		})
	}
	writeControlResult(w, map[string]any{"events": out}, nil)
}

type controlMetric struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	StartTime   string            `json:"startTime"`
	EndTime     string            `json:"endTime"`
	Int64Value  *string           `json:"int64Value,omitempty"` // a string, as in the Service Control API
	DoubleValue *float64          `json:"doubleValue,omitempty"`
}

type controlReport struct {
	OperationID   string            `json:"operationId"`
	OperationName string            `json:"operationName,omitempty"`
	ConsumerID    string            `json:"consumerId"`
	StartTime     string            `json:"startTime"`
	EndTime       string            `json:"endTime"`
	Labels        map[string]string `json:"labels,omitempty"`
	UserLabels    map[string]string `json:"userLabels,omitempty"`
	Metrics       []controlMetric   `json:"metrics"`
	ReportedAt    string            `json:"reportedAt"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (s *Server) controlReports(w http.ResponseWriter, r *http.Request) {
	out := []controlReport{}
	for _, op := range s.Reports() {
		rep := controlReport{
			OperationID: op.OperationID, OperationName: op.OperationName, ConsumerID: op.ConsumerID,
			StartTime: rfc3339(op.Start), EndTime: rfc3339(op.End), Labels: op.Labels,
			UserLabels: op.UserLabels, Metrics: []controlMetric{}, ReportedAt: rfc3339(op.ReportedAt),
		}
		for _, m := range op.Metrics {
			cm := controlMetric{Name: m.Name, Labels: m.Labels, StartTime: rfc3339(m.Start), EndTime: rfc3339(m.End)}
			if m.IsDouble {
				v := m.Double
				cm.DoubleValue = &v
			} else {
				v := strconv.FormatInt(m.Int64, 10)
				cm.Int64Value = &v
			}
			rep.Metrics = append(rep.Metrics, cm)
		}
		out = append(out, rep)
	}
	writeControlResult(w, map[string]any{"reports": out}, nil)
}

type controlViolation struct {
	Kind             ViolationKind `json:"kind"`
	OperationID      string        `json:"operationId"`
	OtherOperationID string        `json:"otherOperationId,omitempty"`
	ConsumerID       string        `json:"consumerId"`
	Metric           string        `json:"metric,omitempty"`
	StartTime        string        `json:"startTime"`
	EndTime          string        `json:"endTime"`
}

func (s *Server) controlViolations(w http.ResponseWriter, r *http.Request) {
	out := []controlViolation{}
	for _, v := range s.Violations() {
		out = append(out, controlViolation{
			Kind: v.Kind, OperationID: v.OperationID, OtherOperationID: v.OtherOperationID,
			ConsumerID: v.ConsumerID, Metric: v.Metric, StartTime: rfc3339(v.Start), EndTime: rfc3339(v.End),
		})
	}
	writeControlResult(w, map[string]any{"violations": out}, nil)
}

func (s *Server) controlCheckErrors(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ConsumerID string `json:"consumerId"`
		Code       string `json:"code"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.ConsumerID == "" {
		writeControlResult(w, nil, badControlRequest("checkErrors needs a consumerId"))
		return
	}
	if req.Code == "" {
		s.ClearCheckError(req.ConsumerID)
	} else {
		s.SetCheckError(req.ConsumerID, req.Code)
	}
	writeControlResult(w, nil, nil)
}
