package ops

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// chartHours is how far back the customer page's usage chart reaches.
const chartHours = 48

// Chart geometry, in SVG user units.
const (
	chartW, chartH         = 720, 240
	chartLeft, chartBottom = 48, 28 // room for the axis labels
	chartTop               = 24     // room for the legend
)

// hourly is one hour of the chart: usage recorded (every sealed window,
// whatever its state) and reported (Reported windows: billed).
type hourly struct {
	hour               time.Time
	recorded, reported float64
}

// usageChart renders, as inline SVG, the usage per hour of the
// entitlements ids over the last chartHours: recorded against reported,
// for metric (or the metric with the most usage when metric is "").
func (h *Handler) usageChart(ctx context.Context, ids []string, metric string) (template.HTML, error) {
	if h.cfg.Reporter == nil {
		return "", errNoReporter
	}
	now := h.cfg.Now().UTC()
	from := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	var ws []usage.Window
	for _, id := range ids {
		got, err := h.allWindows(ctx, usage.ReadBackQuery{EntitlementID: id, From: from})
		if err != nil {
			return "", err
		}
		ws = append(ws, got...)
	}
	if metric == "" {
		metric = busiestMetric(ws)
	}
	hours := map[time.Time]*hourly{}
	for _, w := range ws {
		hr := w.Start.UTC().Truncate(time.Hour)
		for _, v := range w.Values {
			if v.Metric != metric {
				continue
			}
			x := hours[hr]
			if x == nil {
				x = &hourly{hour: hr}
				hours[hr] = x
			}
			val := metricValueJSON{Kind: v.Kind.String(), Int64: v.Int64, Double: v.Double}.Value()
			x.recorded += val
			if w.State == usage.StateReported {
				x.reported += val
			}
		}
	}
	return renderChart(metric, hourSeries(hours, now)), nil
}

// busiestMetric is the metric with the most usage in ws.
func busiestMetric(ws []usage.Window) string {
	sums := map[string]float64{}
	for _, w := range ws {
		for _, v := range w.Values {
			sums[v.Metric] += metricValueJSON{Kind: v.Kind.String(), Int64: v.Int64, Double: v.Double}.Value()
		}
	}
	best := ""
	for m, s := range sums {
		if best == "" || s > sums[best] || (s == sums[best] && m < best) {
			best = m
		}
	}
	return best
}

// hourSeries lists every hour from the first one with usage to the
// current hour, empty hours included, so the chart's x axis is time.
func hourSeries(hours map[time.Time]*hourly, now time.Time) []hourly {
	if len(hours) == 0 {
		return nil
	}
	keys := make([]time.Time, 0, len(hours))
	for k := range hours {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, time.Time.Compare)
	last := now.Truncate(time.Hour)
	if keys[len(keys)-1].After(last) {
		last = keys[len(keys)-1]
	}
	var out []hourly
	for t := keys[0]; !t.After(last); t = t.Add(time.Hour) {
		if x := hours[t]; x != nil {
			out = append(out, *x)
		} else {
			out = append(out, hourly{hour: t})
		}
	}
	return out
}

// renderChart draws grouped bars: recorded (grey) and reported (blue) per
// hour. Every text is escaped; the result is safe to inline.
func renderChart(metric string, series []hourly) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="usage-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="usage-chart-title">`,
		chartW, chartH, chartW, chartH)
	title := "Usage per hour: no usage in the last " + strconv.Itoa(chartHours) + " hours"
	if len(series) > 0 {
		title = "Usage per hour of " + metric + ": recorded against reported"
	}
	fmt.Fprintf(&b, `<title id="usage-chart-title">%s</title>`, html.EscapeString(title))
	b.WriteString(`<rect x="0" y="0" width="100%" height="100%" fill="#fff" stroke="#dadce0"/>`)
	fmt.Fprintf(&b, `<rect x="%d" y="6" width="10" height="10" fill="#9aa0a6"/><text x="%d" y="15" font-size="11">recorded</text>`, chartLeft, chartLeft+14)
	fmt.Fprintf(&b, `<rect x="%d" y="6" width="10" height="10" fill="#1a73e8"/><text x="%d" y="15" font-size="11">reported (billed)</text>`, chartLeft+80, chartLeft+94)
	fmt.Fprintf(&b, `<text x="%d" y="15" font-size="11">%s</text>`, chartLeft+220, html.EscapeString(metric))
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">No usage in the last %d hours.</text></svg>`, chartLeft, chartH/2, chartHours)
		return template.HTML(b.String()) // #nosec: built from escaped text only
	}
	top := 0.0
	for _, x := range series {
		top = max(top, x.recorded, x.reported)
	}
	if top == 0 {
		top = 1
	}
	plotW, plotH := float64(chartW-chartLeft-8), float64(chartH-chartTop-chartBottom)
	baseY := float64(chartH - chartBottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#5f6368"/>`, chartLeft, baseY, chartW-8, baseY)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" text-anchor="end">%s</text>`, chartLeft-4, chartTop+8, formatValue(top))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end">0</text>`, chartLeft-4, baseY)
	slot := plotW / float64(len(series))
	bar := max(slot*0.4, 1)
	every := max(1, len(series)/8) // at most about eight hour labels
	for i, x := range series {
		x0 := float64(chartLeft) + float64(i)*slot + slot*0.1
		for j, v := range []float64{x.recorded, x.reported} {
			hgt := v / top * plotH
			fill := [2]string{"#9aa0a6", "#1a73e8"}[j]
			class := [2]string{"recorded", "reported"}[j]
			fmt.Fprintf(&b, `<rect class="%s" data-hour="%s" data-value="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				class, x.hour.Format(time.RFC3339), formatValue(v), x0+float64(j)*bar, baseY-hgt, bar, hgt, fill,
				x.hour.Format("2006-01-02 15:00Z"), class, formatValue(v))
		}
		if i%every == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10">%s</text>`, x0, baseY+14, x.hour.Format("02 15h"))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // #nosec: built from escaped text only
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
