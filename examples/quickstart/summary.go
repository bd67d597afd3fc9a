package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

func (d *driver) summary(took time.Duration) error {
	out, emu, tl := d.tl.out, d.emu, d.tl
	published := emu.Published()
	acked := 0
	for _, p := range published {
		if m := emu.PubSub().Message(p.MessageID); m != nil && m.Acks > 0 {
			acked++
		}
	}
	poison, err := d.proc.Poison(d.ctx, 0)
	if err != nil {
		return err
	}
	procCalls, procTotal := callCounts(emu, []marketplacetest.Method{
		marketplacetest.MethodAccountsGet, marketplacetest.MethodAccountsList, marketplacetest.MethodAccountsApprove,
		marketplacetest.MethodEntitlementsGet, marketplacetest.MethodEntitlementsList, marketplacetest.MethodEntitlementsApprove,
		marketplacetest.MethodEntitlementsApprovePlanChange, marketplacetest.MethodEntitlementsPatch,
	})
	tl.mu.Lock()
	names := make([]string, 0, len(tl.callbacks))
	for n := range tl.callbacks {
		names = append(names, n)
	}
	sort.Strings(names)
	var cbs []string
	for _, n := range names {
		cbs = append(cbs, fmt.Sprintf("%s %d", n, tl.callbacks[n]))
	}
	steps := tl.steps
	tl.mu.Unlock()

	fmt.Fprintf(out, "\nSummary\n")
	fmt.Fprintf(out, "  steps         %d/%d completed\n", steps, totalSteps)
	fmt.Fprintf(out, "  events        %d published by Marketplace, %d handled and acknowledged, %d poison\n", len(published), acked, len(poison))
	fmt.Fprintf(out, "  callbacks     %s\n", rows(cbs, 3))
	fmt.Fprintf(out, "  API calls     Procurement %d: %s\n", procTotal, rows(procCalls, 4))
	fmt.Fprintf(out, "                Service Control: services.check %d, services.report %d\n",
		emu.Calls(marketplacetest.MethodServicesCheck), emu.Calls(marketplacetest.MethodServicesReport))
	fmt.Fprintf(out, "  usage         %d %s recorded = %d reported in %d hourly operations, %d double-billed\n",
		d.recorded, metric, emu.BilledTotal(d.consumerID, emu.ServiceName()+"/"+metric), len(d.reports), len(emu.Violations()))
	fmt.Fprintf(out, "  took          %s (emulator clock moved %s)\n", took.Round(time.Millisecond),
		emu.Clock().Now().Sub(published[0].At).Round(time.Minute))
	if steps != totalSteps || acked != len(published) || len(poison) != 0 {
		return fmt.Errorf("incomplete run: %d/%d steps, %d/%d events acknowledged, %d poison", steps, totalSteps, acked, len(published), len(poison))
	}
	fmt.Fprintf(out, "\nOK: every step happened.\n")
	return nil
}

// rows joins items with commas, perRow to a line, lines indented to the
// summary's second column.
func rows(items []string, perRow int) string {
	var b strings.Builder
	for i, it := range items {
		switch {
		case i == 0:
		case i%perRow == 0:
			b.WriteString(",\n                ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(it)
	}
	return b.String()
}

func callCounts(emu *marketplacetest.Server, methods []marketplacetest.Method) ([]string, int) {
	var parts []string
	total := 0
	for _, m := range methods {
		if n := emu.Calls(m); n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(string(m), "cloudcommerceprocurement.providers."), n))
		}
	}
	return parts, total
}

func sumMetric(op marketplacetest.ReportedOperation) int64 {
	var n int64
	for _, m := range op.Metrics {
		n += m.Int64
	}
	return n
}

// short shortens an id for display.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
