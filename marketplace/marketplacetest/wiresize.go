package marketplacetest

// This file measures a Service Control request the way its 1 MB limit is
// stated: on the protobuf (wire) size of the CheckRequest or ReportRequest,
// not on the JSON the REST front end receives (issue 21, item 8).
//
// The servicecontrol v1 proto types (cloud.google.com/go/servicecontrol)
// are not a dependency of the module, so this is a small encoder of sizes
// over the wire types the emulator decodes, with protowire's arithmetic.
// Field numbers are those of google/api/servicecontrol/v1
// (service_controller.proto, operation.proto, metric_value.proto) for
// ReportRequest {service_name 1, operations 2, service_config_id 3},
// CheckRequest {service_name 1, operation 2, service_config_id 4, and two
// bools}, Operation {operation_id 1, operation_name 2, consumer_id 3,
// start_time 4, end_time 5, labels 6, metric_value_sets 7, log_entries 8,
// importance 11}, MetricValueSet {metric_name 1, metric_values 2},
// MetricValue {labels 1, start_time 2, end_time 3, bool_value 4,
// int64_value 5, double_value 6, string_value 7, distribution_value 8,
// money_value 9} and Timestamp {seconds 1, nanos 2}. Approximations, all
// documented here: the discovery document's Operation fields that the
// public proto does not number (userLabels, quotaProperties, resources,
// traceSpans) are counted with one-byte tags; the messages the emulator
// does not model field by field (logEntries, quotaProperties, resources,
// traceSpans, distributionValue, moneyValue) are counted at their JSON
// length, an over-estimate (JSON names every field; the wire numbers them).
// Billing operations carry none of those.

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// reportWireSize is the protobuf size of the ReportRequest of service
// with these operations.
func reportWireSize(service, configID string, ops []wireOperation) int {
	n := stringField(1, service) + stringField(3, configID)
	for i := range ops {
		n += messageField(2, operationWireSize(&ops[i]))
	}
	return n
}

// checkWireSize is the protobuf size of the CheckRequest of service.
func checkWireSize(service, configID string, op *wireOperation, skipActivation, projectSettings bool) int {
	n := stringField(1, service) + stringField(4, configID) + boolField(skipActivation) + boolField(projectSettings)
	if op != nil {
		n += messageField(2, operationWireSize(op))
	}
	return n
}

func operationWireSize(op *wireOperation) int {
	n := stringField(1, op.OperationID) + stringField(2, op.OperationName) + stringField(3, op.ConsumerID) +
		timestampField(4, op.StartTime) + timestampField(5, op.EndTime) +
		mapField(6, op.Labels) + mapField(1, op.UserLabels)
	for _, set := range op.MetricValueSets {
		s := stringField(1, set.MetricName)
		for i := range set.MetricValues {
			s += messageField(2, metricValueWireSize(&set.MetricValues[i]))
		}
		n += messageField(7, s)
	}
	for _, raw := range op.LogEntries {
		n += messageField(8, len(raw))
	}
	if op.Importance != "" && op.Importance != "LOW" {
		n += protowire.SizeTag(11) + 1 // an enum value below 128
	}
	n += rawField(op.QuotaProperties)
	for _, raw := range op.Resources {
		n += messageField(1, len(raw))
	}
	for _, raw := range op.TraceSpans {
		n += messageField(1, len(raw))
	}
	return n
}

func metricValueWireSize(v *wireMetricValue) int {
	// bool_value, int64_value, double_value and string_value are in the
	// value oneof: a set member is written even when zero, false or empty
	// (protobuf's oneof presence): 2 bytes for false, 0 or "", 9 for 0.0.
	n := mapField(1, v.Labels) + timestampField(2, v.StartTime) + timestampField(3, v.EndTime)
	if v.BoolValue != nil {
		n += 2 // a one-byte tag and a one-byte varint
	}
	if len(v.Int64Value) > 0 && string(v.Int64Value) != "null" {
		i, err := strconv.ParseInt(strings.Trim(string(v.Int64Value), `"`), 10, 64)
		if err != nil {
			return n + messageField(5, len(v.Int64Value)) // refused anyway (parseOperation)
		}
		n += protowire.SizeTag(5) + protowire.SizeVarint(uint64(i))
	}
	if len(v.DoubleValue) > 0 && string(v.DoubleValue) != "null" {
		n += protowire.SizeTag(6) + protowire.SizeFixed64()
	}
	if v.StringValue != nil {
		n += protowire.SizeTag(7) + protowire.SizeBytes(len(*v.StringValue)) // written even when empty
	}
	return n + rawField(v.DistributionValue) + rawField(v.MoneyValue)
}

// stringField is the size of a proto3 string field: absent when empty.
func stringField(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// messageField is the size of an embedded message (or repeated element)
// of size bytes: always present.
func messageField(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

func boolField(b bool) int {
	if !b {
		return 0
	}
	return 2 // a one-byte tag and a one-byte varint
}

// rawField counts a message the emulator does not model at its JSON length.
func rawField(raw json.RawMessage) int {
	if len(raw) == 0 || string(raw) == "null" {
		return 0
	}
	return messageField(1, len(raw))
}

// mapField is the size of a map<string, string>: one entry message per
// pair, whose key and value are written even when empty (as the Go and C++
// encoders do; the larger of the two sizes the format allows).
func mapField(num protowire.Number, m map[string]string) int {
	n := 0
	for k, v := range m {
		n += messageField(num, 2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v)))
	}
	return n
}

// timestampField is the size of a google.protobuf.Timestamp given in its
// JSON form; a value that does not parse (refused anyway) counts its
// length.
func timestampField(num protowire.Number, v string) int {
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return messageField(num, len(v))
	}
	n := 0
	if s := t.Unix(); s != 0 {
		n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(s))
	}
	if ns := t.Nanosecond(); ns != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(ns))
	}
	return messageField(num, n)
}
