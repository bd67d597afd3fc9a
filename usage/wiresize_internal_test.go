package usage

import (
	"encoding/json"
	"testing"
	"time"
)

// The batcher measures an operation on the wire, where Service Control's
// 1 MB limit applies: for an hourly window that is well under its JSON.
func TestOperationWireFieldUnderJSON(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	op, err := operationOf(Window{
		OperationID: OperationID("4f165726-0a12-4b7c-ab5b-34a6ca9fa5d3", start, []string{"svc/requests", "svc/storage_gib"}, ""),
		ConsumerID:  "project_number:123456789012",
		Start:       start, End: start.Add(time.Hour),
		Labels: encodeLabels(map[string]string{LabelResourceName: "instance-1", LabelContainerName: "prod"}),
		Values: []MetricValue{{Metric: "svc/requests", Kind: Int64, Int64: 123456}, {Metric: "svc/storage_gib", Kind: Int64, Int64: 42}},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	wire := operationWireField(op)
	t.Logf("one hourly operation: %d bytes of JSON, %d on the wire: %d vs %d operations per 1 MB request",
		len(raw)+1, wire, MaxRequestBytes/(len(raw)+1), MaxRequestBytes/wire)
	if wire <= 0 || wire >= len(raw) {
		t.Fatalf("wire size %d, JSON %d", wire, len(raw))
	}
	idle, err := operationOf(Window{
		OperationID: OperationID("4f165726-0a12-4b7c-ab5b-34a6ca9fa5d3", start, []string{"svc/requests"}, ""),
		ConsumerID:  "project_number:123456789012", Start: start, End: start.Add(time.Hour),
		Values: []MetricValue{{Metric: "example-service.endpoints.acme-provider.cloud.goog/requests", Kind: Int64}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("an idle consumer's zero operation: %d bytes on the wire, %d per 1 MB request",
		operationWireField(idle), MaxRequestBytes/operationWireField(idle))
}

// int64_value and double_value are members of a oneof: protobuf writes a
// set member even when zero, so an idle consumer's zero operation is as
// large on the wire as one reporting 1 (a 1-byte varint either way), and a
// zero double takes its 9 bytes.
func TestOperationWireFieldCountsZeroValues(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	size := func(kind MetricKind, i int64, d float64) int {
		op, err := operationOf(Window{
			OperationID: "op", ConsumerID: "project_number:1", Start: start, End: start.Add(time.Hour),
			Values: []MetricValue{{Metric: "svc/m", Kind: kind, Int64: i, Double: d}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return operationWireField(op)
	}
	if zero, one := size(Int64, 0, 0), size(Int64, 1, 0); zero != one {
		t.Errorf("int64 0 counts %d bytes, 1 counts %d: a set oneof member is written even when zero", zero, one)
	}
	if zero, half := size(Double, 0, 0), size(Double, 0, 0.5); zero != half {
		t.Errorf("double 0 counts %d bytes, 0.5 counts %d", zero, half)
	}
}
