package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// usageReported serves GET /ops/usage/reported: what the reporter sent to
// Service Control (and what it did not), one line per operation and
// metric, in usage.ExportColumns, to reconcile with Cloud Billing's
// export. Parameters (all optional, unknown ones refused):
//
//	entitlement=ID                     one entitlement
//	state=reported,unknown,...         window states (repeatable)
//	from=RFC3339&to=RFC3339            window start in [from, to)
//	format=jsonl|csv                   default jsonl
//
// The export is streamed a page at a time. A failure after the first byte
// aborts the response, so that a client never takes a truncated export for
// a whole one.
func (b *backend) usageReported(w http.ResponseWriter, r *http.Request) {
	q, format, err := parseReadBackQuery(r.URL.Query())
	if err != nil {
		writeJSON(w, nil, err)
		return
	}
	contentType := "application/jsonl; charset=utf-8"
	if format == usage.ExportCSV {
		contentType = "text/csv; charset=utf-8"
	}
	cw := &countingWriter{w: w}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="usage-reported.%s"`, format))
	lines, err := b.reporter.Export(r.Context(), cw, format, q)
	if err == nil {
		return
	}
	b.log.ErrorContext(r.Context(), "usage export failed", slog.String("query", r.URL.RawQuery),
		slog.Int("lines", lines), slog.Any("err", err))
	if cw.n == 0 {
		w.Header().Del("Content-Disposition")
		writeJSON(w, nil, err)
		return
	}
	panic(http.ErrAbortHandler)
}

// countingWriter tells whether the response has started.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// parseReadBackQuery reads the parameters of /ops/usage/reported. Errors
// wrap usage.ErrInvalid.
func parseReadBackQuery(v url.Values) (usage.ReadBackQuery, usage.ExportFormat, error) {
	var q usage.ReadBackQuery
	var errs []error
	for key := range v {
		switch key {
		case "entitlement", "state", "from", "to", "format":
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %.40q", key))
		}
	}
	q.EntitlementID = v.Get("entitlement")
	for _, s := range v["state"] {
		for st := range strings.SplitSeq(s, ",") {
			q.States = append(q.States, usage.WindowState(strings.TrimSpace(st)))
		}
	}
	for key, t := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if s := v.Get(key); s != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339, s); err != nil {
				errs = append(errs, fmt.Errorf("%s: want an RFC 3339 time: %.60q", key, s))
			}
		}
	}
	format := usage.ExportJSONLines
	if s := v.Get("format"); s != "" {
		var err error
		if format, err = usage.ParseExportFormat(s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return q, "", fmt.Errorf("%w: %w", usage.ErrInvalid, err)
	}
	return q, format, nil
}
