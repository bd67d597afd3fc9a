package marketplace

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUniqueKeysInnermostWins(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	plain := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		}})
	log := slog.New(newUniqueKeys(plain))

	log.With("account_id", "a1", "source", "signup").With("source", "reconcile").Info("m", "account_id", "a2", "n", 1)
	log.With("k", 1).WithGroup("g").With("k", 2).Info("m", "k", 3)
	log.Info("m", "k", 1, "k", 2)
	assert.Equal(t, `{"msg":"m","account_id":"a2","source":"reconcile","n":1}
{"msg":"m","k":1,"g":{"k":3}}
{"msg":"m","k":2}
`, buf.String())
}
