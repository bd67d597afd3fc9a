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
		ic.putCaller(id, &Caller{}, now.Add(time.Minute))
	}
	assert.LessOrEqual(t, len(ic.statements), maxCached)
	assert.LessOrEqual(t, len(ic.clients), maxCached)
	assert.LessOrEqual(t, len(ic.callers), maxCached)
	_, ok := ic.statement(ic.statementKey(strconv.Itoa(maxCached+99)), now)
	assert.True(t, ok, "the newest entry is kept")
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
