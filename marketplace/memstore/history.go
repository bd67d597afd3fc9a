package memstore

import (
	"context"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// AppendTransition implements marketplace.Tx.
func (t *tx) AppendTransition(ctx context.Context, tr marketplace.Transition) error {
	if err := t.check(ctx, "append transition", tr.EntitlementID); err != nil {
		return err
	}
	oldLen, oldSeq := len(t.s.history), t.s.historySeq
	t.undo = append(t.undo, func() {
		t.s.history = t.s.history[:oldLen]
		t.s.historySeq = oldSeq
	})
	t.s.historySeq++
	tr.Seq = t.s.historySeq
	tr.At = tr.At.UTC()
	t.s.history = append(t.s.history, tr)
	return nil
}

// ListTransitions implements marketplace.Tx.
func (t *tx) ListTransitions(ctx context.Context, q marketplace.HistoryQuery) ([]marketplace.Transition, error) {
	if err := t.check(ctx, "list transitions"); err != nil {
		return nil, err
	}
	out := []marketplace.Transition{}
	for _, tr := range t.s.history { // appended in Seq order
		if (q.AccountID == "" || tr.AccountID == q.AccountID) && (q.EntitlementID == "" || tr.EntitlementID == q.EntitlementID) {
			out = append(out, tr)
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// deleteHistory removes the transitions of account id (DeleteAccount).
func (t *tx) deleteHistory(id string) {
	old := t.s.history
	t.undo = append(t.undo, func() { t.s.history = old })
	kept := make([]marketplace.Transition, 0, len(old))
	for _, tr := range old {
		if tr.AccountID != id {
			kept = append(kept, tr)
		}
	}
	t.s.history = kept
}

func (readOnlyTx) AppendTransition(context.Context, marketplace.Transition) error {
	return readOnly("append transition")
}
