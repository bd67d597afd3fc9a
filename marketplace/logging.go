package marketplace

import (
	"context"
	"log/slog"
	"slices"
)

// uniqueKeys wraps the processor's log handler so that a record carries
// each key once. The processor adds context as it descends (the caller's
// source and account, then settleEntitlement's entitlement and account,
// then the line's own attributes), and a key known at two levels (the
// account of a sign-up and of the entitlement it settles; the source of a
// reconcile and of the purge it triggers) would otherwise appear twice, which
// JSON consumers read as one value or reject. The innermost value wins: it
// is the most specific.
//
// Attributes given to WithAttrs are kept here until a record is handled,
// then passed on with the record's own; a group passes them on first, so
// that keys stay within the scope they were given in.
type uniqueKeys struct {
	next  slog.Handler
	attrs []slog.Attr // since the last group, each key once
}

func newUniqueKeys(h slog.Handler) slog.Handler {
	if u, ok := h.(*uniqueKeys); ok {
		return u
	}
	return &uniqueKeys{next: h}
}

func (h *uniqueKeys) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *uniqueKeys) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return &uniqueKeys{next: h.next, attrs: setAttrs(slices.Clone(h.attrs), as)}
}

func (h *uniqueKeys) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	next := h.next
	if len(h.attrs) > 0 {
		next = next.WithAttrs(h.attrs)
	}
	return &uniqueKeys{next: next.WithGroup(name)}
}

func (h *uniqueKeys) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) == 0 && !repeatsKey(r) {
		return h.next.Handle(ctx, r)
	}
	own := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		own = append(own, a)
		return true
	})
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(setAttrs(slices.Clone(h.attrs), own)...)
	return h.next.Handle(ctx, out)
}

// setAttrs adds as to dst, a later value replacing an earlier one with the
// same key in place.
func setAttrs(dst, as []slog.Attr) []slog.Attr {
	for _, a := range as {
		if i := slices.IndexFunc(dst, func(d slog.Attr) bool { return d.Key == a.Key }); i >= 0 {
			dst[i] = a
			continue
		}
		dst = append(dst, a)
	}
	return dst
}

// repeatsKey reports whether a record's own attributes repeat a key.
func repeatsKey(r slog.Record) bool {
	seen := make(map[string]bool, r.NumAttrs())
	dup := false
	r.Attrs(func(a slog.Attr) bool {
		dup = seen[a.Key]
		seen[a.Key] = true
		return !dup
	})
	return dup
}
