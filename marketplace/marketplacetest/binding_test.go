package marketplacetest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeStrictBinding(t *testing.T) {
	type req struct {
		ApprovalName string `json:"approvalName"`
		Ops          []struct {
			OperationID string `json:"operationId"`
		} `json:"operations"`
	}
	var r req
	require.Nil(t, decodeStrict([]byte(`{"approval_name":"signup","operations":[{"operation_id":"x"}]}`), &r))
	require.Equal(t, "signup", r.ApprovalName)
	require.Equal(t, "x", r.Ops[0].OperationID)

	for body, msg := range map[string]string{
		`{"APPROVALNAME":"signup"}`:                       `Unknown name "APPROVALNAME": Cannot find field.`,
		`{"operations":[{"OperationId":"x"}]}`:            `Unknown name "OperationId" at 'operations[0]': Cannot find field.`,
		`{"approvalName":"a","approval_name":"b"}`:        `Duplicate field "approval_name"`,
		`{"approvalName":"signup"} {}`:                    `Unexpected data after the message.`,
		`{"approval_nam":"signup"}`:                       `Unknown name "approval_nam"`,
		`{"operations":[{"operation_id":"x","bogus":1}]}`: `Unknown name "bogus" at 'operations[0]'`,
	} {
		e := decodeStrict([]byte(body), &req{})
		require.NotNil(t, e, body)
		require.Equal(t, "INVALID_ARGUMENT", e.status, body)
		require.Contains(t, e.message, msg, body)
	}
}
