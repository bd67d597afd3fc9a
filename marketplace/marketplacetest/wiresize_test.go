package marketplacetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sc "google.golang.org/api/servicecontrol/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// servicecontrolSchema builds the part of google/api/servicecontrol/v1
// that billing reports use, with its field numbers (userLabels, which the
// public proto does not number, takes 13), so that reportWireSize can be
// checked against a real protobuf encoding.
func servicecontrolSchema(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	field := func(name string, num int32, label descriptorpb.FieldDescriptorProto_Label, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label.Enum(), Type: typ.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	mapEntry := func(name string) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{
			Name:    proto.String(name),
			Field:   []*descriptorpb.FieldDescriptorProto{field("key", 1, opt, str, ""), field("value", 2, opt, str, "")},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}
	}
	// The value members are one oneof, as in the real MetricValue: a set
	// member is written even when zero.
	inValue := func(f *descriptorpb.FieldDescriptorProto) *descriptorpb.FieldDescriptorProto {
		f.OneofIndex = proto.Int32(0)
		return f
	}
	ts := ".google.protobuf.Timestamp"
	file := &descriptorpb.FileDescriptorProto{
		Name: proto.String("sc_test.proto"), Package: proto.String("sc"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("MetricValue"), NestedType: []*descriptorpb.DescriptorProto{mapEntry("LabelsEntry")}, Field: []*descriptorpb.FieldDescriptorProto{
				field("labels", 1, rep, msg, ".sc.MetricValue.LabelsEntry"),
				field("start_time", 2, opt, msg, ts), field("end_time", 3, opt, msg, ts),
				inValue(field("bool_value", 4, opt, descriptorpb.FieldDescriptorProto_TYPE_BOOL, "")),
				inValue(field("int64_value", 5, opt, descriptorpb.FieldDescriptorProto_TYPE_INT64, "")),
				inValue(field("double_value", 6, opt, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, "")),
				inValue(field("string_value", 7, opt, str, "")),
			}, OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("value")}}},
			{Name: proto.String("MetricValueSet"), Field: []*descriptorpb.FieldDescriptorProto{
				field("metric_name", 1, opt, str, ""), field("metric_values", 2, rep, msg, ".sc.MetricValue"),
			}},
			{Name: proto.String("Operation"), NestedType: []*descriptorpb.DescriptorProto{mapEntry("LabelsEntry"), mapEntry("UserLabelsEntry")}, Field: []*descriptorpb.FieldDescriptorProto{
				field("operation_id", 1, opt, str, ""), field("operation_name", 2, opt, str, ""), field("consumer_id", 3, opt, str, ""),
				field("start_time", 4, opt, msg, ts), field("end_time", 5, opt, msg, ts),
				field("labels", 6, rep, msg, ".sc.Operation.LabelsEntry"),
				field("metric_value_sets", 7, rep, msg, ".sc.MetricValueSet"),
				field("user_labels", 13, rep, msg, ".sc.Operation.UserLabelsEntry"),
			}},
			{Name: proto.String("ReportRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				field("service_name", 1, opt, str, ""), field("operations", 2, rep, msg, ".sc.Operation"),
				field("service_config_id", 3, opt, str, ""),
			}},
		},
	}
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto), file,
	}})
	require.NoError(t, err)
	d, err := files.FindDescriptorByName("sc.ReportRequest")
	require.NoError(t, err)
	return d.(protoreflect.MessageDescriptor)
}

// TestReportWireSizeMatchesProtobuf: the size the emulator checks the 1 MB
// limit on is the size protobuf encodes the same request to.
func TestReportWireSizeMatchesProtobuf(t *testing.T) {
	desc := servicecontrolSchema(t)
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	var ops []map[string]any
	for i := range 40 {
		op := map[string]any{
			"operationId": fmt.Sprintf("op-%d", i), "operationName": "hourly", "consumerId": "project_number:123456789012",
			"startTime": start.Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano),
			"endTime":   start.Add(time.Duration(i)*time.Hour + time.Hour + time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano),
			"metricValueSets": []map[string]any{{"metricName": "svc/requests", "metricValues": []map[string]any{
				{"int64Value": fmt.Sprint(i * 1000003), "labels": map[string]string{"region": "europe-west1"}},
				{"stringValue": strings.Repeat("é", i)},
				// Set oneof members are written even when zero or false.
				{"int64Value": "0"}, {"doubleValue": 0}, {"boolValue": false}, {"doubleValue": 2.5}, {"boolValue": true},
			}}},
		}
		if i%3 == 0 {
			op["labels"] = map[string]string{"a": "b", "": strings.Repeat("x", 200)}
			op["userLabels"] = map[string]string{"cloudmarketplace.googleapis.com/resource_name": "db-1"}
		}
		ops = append(ops, op)
	}
	raw, err := json.Marshal(map[string]any{"operations": ops, "serviceConfigId": "cfg-1"})
	require.NoError(t, err)

	var req struct {
		Operations      []wireOperation `json:"operations"`
		ServiceConfigID string          `json:"serviceConfigId"`
	}
	require.NoError(t, json.Unmarshal(raw, &req))
	m := dynamicpb.NewMessage(desc)
	withService, err := json.Marshal(map[string]any{"serviceName": "svc.example.com", "operations": ops, "serviceConfigId": "cfg-1"})
	require.NoError(t, err)
	require.NoError(t, protojsonUnmarshal(withService, m))
	wire, err := proto.Marshal(m)
	require.NoError(t, err)
	require.Equal(t, len(wire), reportWireSize("svc.example.com", req.ServiceConfigID, req.Operations))
	require.Less(t, len(wire), len(raw), "the wire is smaller than the JSON for billing reports")
}

func protojsonUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }

// TestReportLimitOnWireSize: a report whose JSON is over 1 MB but whose
// protobuf size is under it is accepted; one over 1 MB on the wire is not.
func TestReportLimitOnWireSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := serviceControlClient(t, s)
	consumer := usageConsumer(t, s)
	start := s.Clock().Now().Truncate(time.Second).Add(time.Second)
	ops := func(n int) []*sc.Operation {
		out := make([]*sc.Operation, n)
		for i := range out {
			out[i] = usageOp(fmt.Sprintf("wire-%d-%d", n, i), consumer, start.Add(time.Duration(i)*time.Hour), s.ServiceName()+"/requests", 1)
		}
		return out
	}
	under := ops(5000)
	raw, err := json.Marshal(&sc.ReportRequest{Operations: under})
	require.NoError(t, err)
	require.Greater(t, len(raw), 1<<20, "the JSON is over 1 MB")
	resp, err := svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: under}).Context(ctx).Do()
	require.NoError(t, err)
	require.Empty(t, resp.ReportErrors)

	requireAPIError(t, doErr(svc.Services.Report(s.ServiceName(), &sc.ReportRequest{Operations: ops(12000)}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
}
