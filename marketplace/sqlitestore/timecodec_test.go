package sqlitestore

import (
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// FuzzTimeEncoding checks the two properties the schema relies on: stored
// times round-trip exactly, and their text order is their time order (the
// updateTime guard and PruneProcessed compare them as strings).
func FuzzTimeEncoding(f *testing.F) {
	f.Add(int64(0), int64(0), int64(1), int64(0))
	f.Add(int64(-62135596800), int64(0), int64(1773500966), int64(535897000)) // zero time vs 2026
	f.Add(int64(253402300799), int64(999999999), int64(253402300799), int64(999999998))
	f.Add(int64(1773500966), int64(1), int64(1773500966), int64(0))
	f.Fuzz(func(t *testing.T, sa, na, sb, nb int64) {
		a := time.Unix(sa, na%1e9)
		b := time.Unix(sb, nb%1e9).In(time.FixedZone("Z+5", 5*3600))
		ea, errA := encodeTime(a)
		eb, errB := encodeTime(b)
		for _, c := range []struct {
			t   time.Time
			enc string
			err error
		}{{a, ea, errA}, {b, eb, errB}} {
			if y := c.t.UTC().Year(); y < 1 || y > 9999 {
				if !errors.Is(c.err, marketplace.ErrInvalid) {
					t.Fatalf("encodeTime(%v) = %q, %v; want ErrInvalid", c.t, c.enc, c.err)
				}
				return
			}
			if c.err != nil {
				t.Fatalf("encodeTime(%v): %v", c.t, c.err)
			}
			got, err := decodeTime(c.enc)
			if err != nil {
				t.Fatalf("decodeTime(%q): %v", c.enc, err)
			}
			if !got.Equal(c.t) || got.Location() != time.UTC {
				t.Fatalf("round trip of %v gave %v", c.t, got)
			}
		}
		if a.Compare(b) != compareStrings(ea, eb) {
			t.Fatalf("order of %v, %v is %d but %q, %q compare %d", a, b, a.Compare(b), ea, eb, compareStrings(ea, eb))
		}
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestDecodeTimeRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "2026-01-02", "2026-01-02T03:04:05Z", "not a time"} {
		if _, err := decodeTime(s); err == nil {
			t.Errorf("decodeTime(%q) succeeded", s)
		}
	}
	zero, err := decodeTime("0001-01-01T00:00:00.000000000Z")
	if err != nil || zero != (time.Time{}) {
		t.Errorf("zero time decoded as %v, %v", zero, err)
	}
}
