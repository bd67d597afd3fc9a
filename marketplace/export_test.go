package marketplace

// ReceiveOnly is Run's receiving part alone (no Reconcile at start, no
// pruning), for benchmarks that measure the pipeline.
var ReceiveOnly = (*Processor).receive
