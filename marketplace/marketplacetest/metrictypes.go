package marketplacetest

// This file declares each Service Control metric's value type and refuses
// values of another type (issue 21, item 3).

import (
	"fmt"
	"strings"
)

// ValueType is the value type of a metric, as a
// google.api.MetricDescriptor declares it in the service configuration.
// Every metric is DELTA: "Generic Service Infrastructure billing supports
// only DELTA INT64 metrics"
// (cloud.google.com/service-infrastructure/docs/reporting-billing-metrics).
type ValueType string

const (
	// ValueInt64 is the type of a billing metric and the default of every
	// metric WithService declares.
	ValueInt64 ValueType = "INT64"
	// ValueDouble is a DOUBLE metric. Billing metrics are INT64 per the
	// page above; one Marketplace integrator reports doubleValue for a
	// metric declared DOUBLE (google-apis.md §4.2, unconfirmed), so a test
	// may declare one with WithMetricType.
	ValueDouble ValueType = "DOUBLE"
)

// WithMetricType declares metric of service (registering both if needed,
// as WithService does; a metric without "/" is prefixed with
// "<service>/") with value type vt. services.report refuses a value of
// another type for it.
func WithMetricType(service, metric string, vt ValueType) Option {
	return func(c *config) {
		if !containsSlash(metric) {
			metric = service + "/" + metric
		}
		known := false
		for _, m := range c.services[service] {
			known = known || m == metric
		}
		if !known {
			WithService(service, metric)(c)
		}
		if c.metricTypes == nil {
			c.metricTypes = map[string]ValueType{}
		}
		c.metricTypes[metric] = vt
	}
}

// metricType is the declared value type of a metric: INT64 unless
// WithMetricType said otherwise.
func (s *Server) metricType(metric string) ValueType {
	if vt, ok := s.cfg.metricTypes[metric]; ok {
		return vt
	}
	return ValueInt64
}

// valueKinds names the value fields a MetricValue sets, by their JSON names.
func valueKinds(mv *wireMetricValue) []string {
	var kinds []string
	add := func(set bool, name string) {
		if set {
			kinds = append(kinds, name)
		}
	}
	add(mv.BoolValue != nil, "boolValue")
	add(len(mv.Int64Value) > 0, "int64Value")
	add(len(mv.DoubleValue) > 0, "doubleValue")
	add(mv.StringValue != nil, "stringValue")
	add(len(mv.DistributionValue) > 0, "distributionValue")
	add(len(mv.MoneyValue) > 0, "moneyValue")
	return kinds
}

// checkValueTypes refuses the whole report (400 INVALID_ARGUMENT) when a
// value of a declared metric is not of the metric's type: for an INT64
// metric anything but int64Value (doubleValue, boolValue, stringValue,
// moneyValue, distributionValue, or no value at all), for a DOUBLE metric
// anything but doubleValue. Source: "Generic Service Infrastructure
// billing supports only DELTA INT64 metrics" (Google's "Reporting billing
// metrics" page) and the metric descriptors of the service configuration,
// which fix each metric's value type. Undocumented which answer Google
// gives to a value of the wrong type, and whether for the request or the
// operation: chosen 400 INVALID_ARGUMENT for the whole request, like the
// other malformed values (a bad int64Value, a duplicate metric), because
// the operation is malformed, not refused for its consumer, and a loud
// refusal is what keeps a wrongly typed value off an invoice in tests.
// More than one value field in a MetricValue breaks the proto oneof and is
// refused for every metric. Unknown metrics are left to reportErrors.
func (s *Server) checkValueTypes(op *wireOperation, path string) *apiError {
	for i, set := range op.MetricValueSets {
		known := false
		for _, ms := range s.cfg.services {
			for _, m := range ms {
				known = known || m == set.MetricName
			}
		}
		for j := range set.MetricValues {
			vpath := fmt.Sprintf("%s.metric_value_sets[%d].metric_values[%d]", path, i, j)
			kinds := valueKinds(&set.MetricValues[j])
			if len(kinds) > 1 {
				return invalidArgument("Invalid value at '%s': more than one of %s set; a MetricValue holds one value.", vpath, strings.Join(kinds, ", "))
			}
			if !known {
				continue
			}
			vt := s.metricType(set.MetricName)
			want := "int64Value"
			if vt == ValueDouble {
				want = "doubleValue"
			}
			if len(kinds) == 0 {
				return invalidArgument("Request contains an invalid argument: '%s' has no value; metric %q is %s DELTA and needs %s.", vpath, shorten(set.MetricName, 100), vt, want)
			}
			if kinds[0] != want {
				return invalidArgument("Request contains an invalid argument: '%s' carries %s, but metric %q is %s DELTA and needs %s.", vpath, kinds[0], shorten(set.MetricName, 100), vt, want)
			}
		}
	}
	return nil
}
