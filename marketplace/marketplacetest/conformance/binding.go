package conformance

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/option"
	sc "google.golang.org/api/servicecontrol/v1"
	htransport "google.golang.org/api/transport/http"
)

// rewrite is an http.RoundTripper that edits the raw request, to send what
// a generated client cannot: other spellings of a field name.
type rewrite struct {
	base http.RoundTripper
	body func(string) string
	url  func(string) string
}

func (rw rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if rw.url != nil {
		r.URL.RawQuery = rw.url(r.URL.RawQuery)
	}
	if rw.body != nil && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		b = []byte(rw.body(string(b)))
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	return rw.base.RoundTrip(r)
}

// rewritingOptions are the target's options with every request passed
// through rw (the target's own HTTP client, so its credentials, underneath).
func rewritingOptions(t *testing.T, tgt Target, rw rewrite) []option.ClientOption {
	t.Helper()
	base, _, err := htransport.NewClient(context.Background(),
		append([]option.ClientOption{option.WithScopes("https://www.googleapis.com/auth/cloud-platform")}, tgt.Options...)...)
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	rw.base = base.Transport
	if rw.base == nil {
		rw.base = http.DefaultTransport
	}
	return append(append([]option.ClientOption(nil), tgt.Options...), option.WithHTTPClient(&http.Client{Transport: rw}))
}

func check(t *testing.T, tgt Target, rw rewrite) error {
	t.Helper()
	svc, err := sc.NewService(context.Background(), rewritingOptions(t, tgt, rw)...)
	if err != nil {
		t.Fatalf("service control client: %v", err)
	}
	_, err = svc.Services.Check(tgt.ServiceName, &sc.CheckRequest{Operation: &sc.Operation{
		OperationId:   "0b6f7c1e-9d3a-5c2e-8f41-000000000c10",
		OperationName: "conformance.binding",
		ConsumerId:    "project_number:1",
		StartTime:     time.Now().UTC().Format(time.RFC3339),
	}}).Context(context.Background()).Do()
	return err
}

// BindingProtoNames: a request body may spell fields by their proto names
// (operation_id, consumer_id, start_time), as the proto3 JSON mapping
// accepts them. services.check bills nothing, so this is safe on Google.
func BindingProtoNames(t *testing.T, tgt Target) {
	err := check(t, tgt, rewrite{body: strings.NewReplacer(
		`"operationId"`, `"operation_id"`, `"consumerId"`, `"consumer_id"`, `"startTime"`, `"start_time"`,
	).Replace})
	if err != nil {
		t.Fatalf("check with proto field names: %v", err)
	}
}

// BindingWrongCase: a key in the wrong case (OPERATIONID) is not the field:
// 400 naming the key ("Unknown name").
func BindingWrongCase(t *testing.T, tgt Target) {
	err := check(t, tgt, rewrite{body: strings.NewReplacer(`"operationId"`, `"OPERATIONID"`).Replace})
	gerr := APIError(t, err, http.StatusBadRequest)
	if !strings.Contains(gerr.Message, `Unknown name "OPERATIONID"`) {
		t.Errorf("message %q does not name the unknown key", gerr.Message)
	}
}

// BindingQueryProtoName: query parameters too bind by proto name:
// page_size=1 is pageSize=1.
func BindingQueryProtoName(t *testing.T, tgt Target) {
	opts := rewritingOptions(t, tgt, rewrite{url: func(q string) string {
		return strings.Replace(q, "pageSize=", "page_size=", 1)
	}})
	svc := Procurement(t, Target{Options: opts})
	r, err := svc.Providers.Entitlements.List(tgt.provider()).PageSize(1).Context(context.Background()).Do()
	if err != nil {
		t.Fatalf("list with page_size: %v", err)
	}
	if len(r.Entitlements) > 1 {
		t.Errorf("page_size=1 answered %d entitlements", len(r.Entitlements))
	}
}
