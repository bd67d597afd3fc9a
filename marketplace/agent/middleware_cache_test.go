package agent

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The caches stay bounded whatever the flood of statements or clients.
func TestIdentCacheBounded(t *testing.T) {
	t.Parallel()
	var ic identCache
	now := time.Now()
	for i := range maxCached + 100 {
		id := strconv.Itoa(i)
		ic.putStatement(ic.statementKey(id), verifiedStatement{orderID: id, exp: now.Add(time.Hour)}, now)
		ic.putClient("c"+id, id)
		ic.putCaller(id, &Caller{}, now.Add(time.Minute), ic.generation())
	}
	assert.LessOrEqual(t, len(ic.statements), maxCached)
	assert.LessOrEqual(t, len(ic.clients), maxCached)
	assert.LessOrEqual(t, len(ic.callers), maxCached)
	_, ok := ic.statement(ic.statementKey(strconv.Itoa(maxCached+99)), now)
	assert.True(t, ok, "the newest entry is kept")
}

// A caller read before its order or entitlement was forgotten is not
// cached after the forget; one read after it is.
func TestIdentCacheSkipsCallersReadBeforeAForget(t *testing.T) {
	t.Parallel()
	var ic identCache
	now := time.Now()
	c := &Caller{Order: Order{ID: "o1", EntitlementID: "e1"}}
	c.Entitlement.ID = "e1"
	for name, forget := range map[string]func(){
		"order":       func() { ic.forgetOrder("o1") },
		"entitlement": func() { ic.forgetEntitlement("e1") },
	} {
		since := ic.generation()
		forget()
		ic.putCaller("o1", c, now.Add(time.Minute), since)
		_, ok := ic.caller("o1", now)
		assert.False(t, ok, "%s forgotten while the caller was read", name)
		ic.putCaller("o1", c, now.Add(time.Minute), ic.generation())
		_, ok = ic.caller("o1", now)
		assert.True(t, ok, "%s: read after the forget", name)
	}
	since := ic.generation()
	ic.forgetOrder("another order")
	ic.putCaller("o1", c, now.Add(time.Minute), since)
	_, ok := ic.caller("o1", now)
	assert.True(t, ok, "another order's forget does not matter")

	// A full forget table is emptied: callers read before that are not cached.
	since = ic.generation()
	for i := range maxCached + 1 {
		ic.forgetOrder("x" + strconv.Itoa(i))
	}
	ic.putCaller("o2", &Caller{Order: Order{ID: "o2"}}, now.Add(time.Minute), since)
	_, ok = ic.caller("o2", now)
	assert.False(t, ok, "forgets were dropped since the caller was read")
	assert.LessOrEqual(t, len(ic.forgot), maxCached)
}

// Whatever the Authorization header, identification never panics, and
// succeeds only for a known token.
func FuzzIdentifyBearer(f *testing.F) {
	r, tc := warmRegistry(3)
	for _, s := range []string{"", "Bearer token-1", "bearer  token-2 ", "Basic x", "Bearer", "Bearer token-", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := r.identifyBearer(context.Background(), tc, header)
		if err == nil && (c == nil || c.Order.ID == "") {
			t.Fatalf("%q: identified %v", header, c)
		}
	})
}
