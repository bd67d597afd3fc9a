package marketplace

import "errors"

// Errors shared by every Store implementation. Stores wrap them with the
// method and resource concerned; test with errors.Is.
var (
	// ErrNotFound means the requested record does not exist.
	ErrNotFound = errors.New("marketplace: not found")
	// ErrClosed means the Store was closed.
	ErrClosed = errors.New("marketplace: store closed")
	// ErrTxDone means a Tx was used after its transaction ended.
	ErrTxDone = errors.New("marketplace: transaction already ended")
	// ErrInvalid means an argument is unusable, such as an empty id.
	ErrInvalid = errors.New("marketplace: invalid argument")
)
