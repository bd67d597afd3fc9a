package usage

import (
	"time"

	"google.golang.org/api/servicecontrol/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// Service Control states its 1 MB request limit on the protobuf (wire)
// size of the ReportRequest (google-apis.md §4.2), not on the JSON the REST
// client sends, so batches are cut on that size. The servicecontrol v1
// proto types are not a dependency; these functions compute the size of
// the fields operationOf sets, with the field numbers of
// google/api/servicecontrol/v1: ReportRequest {service_name 1, operations
// 2}, Operation {operation_id 1, operation_name 2, consumer_id 3,
// start_time 4, end_time 5, labels 6, metric_value_sets 7}, MetricValueSet
// {metric_name 1, metric_values 2}, MetricValue {labels 1, start_time 2,
// end_time 3, int64_value 5, double_value 6}, Timestamp {seconds 1,
// nanos 2}. userLabels, which the public proto does not number, counts
// with a two-byte tag (an over-estimate of at most one byte per label).

// reportRequestWireSize is the wire size of an empty ReportRequest of
// service; each operation adds operationWireField.
func reportRequestWireSize(service string) int { return wireString(1, service) }

// operationWireField is what op adds to a ReportRequest: its size as
// element 2 of the request.
func operationWireField(op *servicecontrol.Operation) int {
	n := wireString(1, op.OperationId) + wireString(2, op.OperationName) + wireString(3, op.ConsumerId) +
		wireTimestamp(4, op.StartTime) + wireTimestamp(5, op.EndTime) +
		wireMap(6, op.Labels) + wireMap(16, op.UserLabels)
	for _, set := range op.MetricValueSets {
		s := wireString(1, set.MetricName)
		for _, v := range set.MetricValues {
			m := wireMap(1, v.Labels) + wireTimestamp(2, v.StartTime) + wireTimestamp(3, v.EndTime)
			// int64_value and double_value are in a oneof: once set they
			// are written even when zero (an idle consumer's report).
			if v.Int64Value != nil {
				m += protowire.SizeTag(5) + protowire.SizeVarint(uint64(*v.Int64Value))
			}
			if v.DoubleValue != nil {
				m += protowire.SizeTag(6) + protowire.SizeFixed64()
			}
			s += wireMessage(2, m)
		}
		n += wireMessage(7, s)
	}
	return wireMessage(2, n)
}

func wireString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func wireMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

func wireMap(num protowire.Number, m map[string]string) int {
	n := 0
	for k, v := range m {
		// Key and value are written even when empty, as the Go and C++
		// encoders do.
		n += wireMessage(num, 2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v)))
	}
	return n
}

// wireTimestamp is the size of a google.protobuf.Timestamp written as RFC
// 3339; one that does not parse counts its length (Service Control refuses
// it anyway).
func wireTimestamp(num protowire.Number, v string) int {
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return wireMessage(num, len(v))
	}
	n := 0
	if s := t.Unix(); s != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(s))
	}
	if ns := t.Nanosecond(); ns != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(ns))
	}
	return wireMessage(num, n)
}
