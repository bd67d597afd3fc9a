package marketplace_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fastSub is a small, fast fake of the Pub/Sub Subscriber gRPC service for
// throughput benchmarks. pstest delivers one message per 10 ms tick per
// stream, so it measures its own pacing; fastSub sends as fast as flow
// control allows.
//
// It serves one subscription preloaded with messages and implements what
// pubsub/v2's Subscriber.Receive uses: StreamingPull, Acknowledge and
// ModifyAckDeadline (the client sends acks, nacks and lease extensions as
// unary calls every 100 ms; ack_ids and modify_deadline_* on the stream are
// honoured too). Like the real service it applies the server-side flow
// control the client asks for in its first StreamingPullRequest: a stream
// has at most max_outstanding_messages (and, but for a first message,
// max_outstanding_bytes) delivered and neither acknowledged nor nacked.
// A nack (deadline 0) puts the message back at the end of the queue for
// redelivery. With noServerFlowControl set (before Receive starts) it
// ignores those limits and leaves flow control to the client alone. Not
// modelled: ack deadlines (a leased message is never redelivered on
// expiry, even when its stream closed), GetSubscription (Receive does not
// call it), ordering keys, exactly-once delivery, dead lettering.
type fastSub struct {
	pubsubpb.UnimplementedSubscriberServer
	name string
	// noServerFlowControl: deliver regardless of outstanding messages; set
	// before any stream opens.
	noServerFlowControl bool

	mu           sync.Mutex
	data         [][]byte
	published    *timestamppb.Timestamp
	queue        []int          // message indexes awaiting (re)delivery, in order
	leases       map[int]*lease // delivered, not yet acknowledged or nacked
	deliveries   []int32        // per message
	acked        []bool
	nAcked       int
	redeliveries int
	peak         int64 // most outstanding messages seen on one stream
	streams      map[*fastStream]struct{}
	done         chan struct{} // closed once every message is acknowledged
}

type lease struct {
	st       *fastStream
	delivery int32
}

type fastStream struct {
	maxMsgs, maxBytes int64
	msgs, bytes       int64         // outstanding; guarded by fastSub.mu
	wake              chan struct{} // capacity 1: capacity or messages freed
}

const fastSubName = "projects/bench-project/subscriptions/fast"

// fastSubBatch bounds the messages in one StreamingPullResponse.
const fastSubBatch = 1000

// newFastSub starts a fastSub holding one message per element of data, and
// returns it with a pubsub client connected to it over an in-memory
// connection. Both are stopped when tb ends.
func newFastSub(tb testing.TB, data [][]byte) (*fastSub, *pubsub.Client) {
	tb.Helper()
	f := &fastSub{
		name:       fastSubName,
		data:       data,
		published:  timestamppb.Now(),
		queue:      make([]int, len(data)),
		leases:     map[int]*lease{},
		deliveries: make([]int32, len(data)),
		acked:      make([]bool, len(data)),
		streams:    map[*fastStream]struct{}{},
		done:       make(chan struct{}),
	}
	for i := range f.queue {
		f.queue[i] = i
	}
	if len(data) == 0 {
		close(f.done)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	pubsubpb.RegisterSubscriberServer(srv, f)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-served
	})
	conn, err := grpc.NewClient("passthrough:///fastsub",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(tb, err)
	client, err := pubsub.NewClient(context.Background(), "bench-project", option.WithGRPCConn(conn))
	require.NoError(tb, err)
	tb.Cleanup(func() {
		_ = client.Close()
		_ = conn.Close()
	})
	return f, client
}

// Done is closed once every message has been acknowledged.
func (f *fastSub) Done() <-chan struct{} { return f.done }

// Redeliveries counts deliveries after a message's first.
func (f *fastSub) Redeliveries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redeliveries
}

// Acked counts the messages acknowledged.
func (f *fastSub) Acked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nAcked
}

func (f *fastSub) check(sub string) error {
	if sub != f.name {
		return status.Errorf(codes.NotFound, "subscription %q not found", sub)
	}
	return nil
}

func (f *fastSub) StreamingPull(srv pubsubpb.Subscriber_StreamingPullServer) error {
	req, err := srv.Recv()
	if err != nil {
		return err
	}
	if err := f.check(req.Subscription); err != nil {
		return err
	}
	st := &fastStream{maxMsgs: req.MaxOutstandingMessages, maxBytes: req.MaxOutstandingBytes, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	f.streams[st] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.streams, st)
		f.mu.Unlock()
	}()
	f.settle(req.AckIds, req.ModifyDeadlineAckIds, req.ModifyDeadlineSeconds)

	// The reader settles acks and nacks sent on the stream and notes pings
	// (empty requests), which are answered with an empty response as the
	// real service's heartbeats. It ends when the stream does.
	recvErr := make(chan error, 1)
	pings := make(chan struct{}, 1)
	go func() {
		for {
			req, err := srv.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if len(req.AckIds) == 0 && len(req.ModifyDeadlineAckIds) == 0 {
				select {
				case pings <- struct{}{}:
				default:
				}
			}
			f.settle(req.AckIds, req.ModifyDeadlineAckIds, req.ModifyDeadlineSeconds)
		}
	}()
	for {
		if batch := f.take(st); len(batch) > 0 {
			if err := srv.Send(&pubsubpb.StreamingPullResponse{ReceivedMessages: batch}); err != nil {
				return err
			}
			continue
		}
		select {
		case <-st.wake:
		case <-pings:
			if err := srv.Send(&pubsubpb.StreamingPullResponse{}); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-srv.Context().Done():
			return srv.Context().Err()
		}
	}
}

// take leases to st as many queued messages as its flow control allows.
func (f *fastSub) take(st *fastStream) []*pubsubpb.ReceivedMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var batch []*pubsubpb.ReceivedMessage
	for len(f.queue) > 0 && len(batch) < fastSubBatch {
		i := f.queue[0]
		size := int64(len(f.data[i]))
		if !f.noServerFlowControl {
			if st.maxMsgs > 0 && st.msgs >= st.maxMsgs {
				break
			}
			if st.maxBytes > 0 && st.msgs > 0 && st.bytes+size > st.maxBytes {
				break
			}
		}
		f.queue = f.queue[1:]
		st.msgs++
		st.bytes += size
		f.peak = max(f.peak, st.msgs)
		f.deliveries[i]++
		if f.deliveries[i] > 1 {
			f.redeliveries++
		}
		f.leases[i] = &lease{st: st, delivery: f.deliveries[i]}
		batch = append(batch, &pubsubpb.ReceivedMessage{
			AckId: fmt.Sprintf("%d.%d", i, f.deliveries[i]),
			Message: &pubsubpb.PubsubMessage{
				Data:        f.data[i],
				MessageId:   strconv.Itoa(i),
				PublishTime: f.published,
			},
		})
	}
	return batch
}

// settle acknowledges acks and, for modacks with a zero deadline, nacks:
// the message is queued again. Positive deadlines (lease extensions) are
// accepted and ignored. Unknown or stale ack ids are ignored.
func (f *fastSub) settle(acks, modIDs []string, modSecs []int32) {
	if len(acks) == 0 && len(modIDs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	woken := map[*fastStream]bool{}
	release := func(id string) (int, bool) {
		idx, delivery, ok := strings.Cut(id, ".")
		i, err1 := strconv.Atoi(idx)
		d, err2 := strconv.Atoi(delivery)
		if !ok || err1 != nil || err2 != nil {
			return 0, false
		}
		l := f.leases[i]
		if l == nil || l.delivery != int32(d) {
			return 0, false
		}
		delete(f.leases, i)
		l.st.msgs--
		l.st.bytes -= int64(len(f.data[i]))
		woken[l.st] = true
		return i, true
	}
	for _, id := range acks {
		if i, ok := release(id); ok && !f.acked[i] {
			f.acked[i] = true
			f.nAcked++
			if f.nAcked == len(f.data) {
				close(f.done)
			}
		}
	}
	requeued := false
	for k, id := range modIDs {
		if k >= len(modSecs) || modSecs[k] != 0 {
			continue
		}
		if i, ok := release(id); ok {
			f.queue = append(f.queue, i)
			requeued = true
		}
	}
	for st := range f.streams {
		if requeued || woken[st] {
			select {
			case st.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (f *fastSub) Acknowledge(_ context.Context, req *pubsubpb.AcknowledgeRequest) (*emptypb.Empty, error) {
	if err := f.check(req.Subscription); err != nil {
		return nil, err
	}
	f.settle(req.AckIds, nil, nil)
	return &emptypb.Empty{}, nil
}

func (f *fastSub) ModifyAckDeadline(_ context.Context, req *pubsubpb.ModifyAckDeadlineRequest) (*emptypb.Empty, error) {
	if err := f.check(req.Subscription); err != nil {
		return nil, err
	}
	secs := make([]int32, len(req.AckIds))
	for k := range secs {
		secs[k] = req.AckDeadlineSeconds
	}
	f.settle(nil, req.AckIds, secs)
	return &emptypb.Empty{}, nil
}

// waitFastSub waits until every message is acknowledged.
func waitFastSub(tb testing.TB, f *fastSub, timeout time.Duration) {
	tb.Helper()
	select {
	case <-f.Done():
	case <-time.After(timeout):
		tb.Fatalf("fastSub: %d of %d messages acknowledged after %v", f.Acked(), len(f.data), timeout)
	}
}

// runFastReceive runs sub.Receive with handle until every message of f is
// acknowledged, then stops it and returns its error.
func runFastReceive(t *testing.T, f *fastSub, sub *pubsub.Subscriber, handle func(context.Context, *pubsub.Message)) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sub.Receive(ctx, handle) }()
	waitFastSub(t, f, 20*time.Second)
	cancel()
	return <-done
}

// Every message is delivered and acknowledged exactly once, within the
// client's flow control.
func TestFastSubDeliversAll(t *testing.T) {
	t.Parallel()
	const n = 1000
	data := make([][]byte, n)
	for i := range data {
		data[i] = []byte(fmt.Sprint("msg-", i))
	}
	f, client := newFastSub(t, data)
	sub := client.Subscriber(fastSubName)
	sub.ReceiveSettings.MaxOutstandingMessages = 250
	var mu sync.Mutex
	seen := map[string]int{}
	var bad atomic.Int32
	require.NoError(t, runFastReceive(t, f, sub, func(_ context.Context, m *pubsub.Message) {
		if string(m.Data) != "msg-"+m.ID {
			bad.Add(1)
		}
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
		m.Ack()
	}))
	assert.Zero(t, bad.Load(), "data matches id")
	assert.Len(t, seen, n)
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %s delivered %d times", id, c)
		}
	}
	assert.Zero(t, f.Redeliveries())
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	assert.LessOrEqual(t, peak, int64(250), "server-side flow control")
	assert.Positive(t, peak)
}

// A nacked message is redelivered, and acknowledged the second time.
func TestFastSubNackRedelivers(t *testing.T) {
	t.Parallel()
	f, client := newFastSub(t, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	var mu sync.Mutex
	seen := map[string]int{}
	require.NoError(t, runFastReceive(t, f, client.Subscriber(fastSubName), func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		seen[m.ID]++
		first := seen[m.ID] == 1
		mu.Unlock()
		if m.ID == "1" && first {
			m.Nack()
			return
		}
		m.Ack()
	}))
	assert.Equal(t, map[string]int{"0": 1, "1": 2, "2": 1}, seen)
	assert.Equal(t, 1, f.Redeliveries())
}

// An unknown subscription fails Receive.
func TestFastSubUnknownSubscription(t *testing.T) {
	t.Parallel()
	_, client := newFastSub(t, [][]byte{[]byte("a")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := client.Subscriber("projects/bench-project/subscriptions/nope").Receive(ctx, func(_ context.Context, m *pubsub.Message) { m.Ack() })
	assert.Equal(t, codes.NotFound, status.Code(err))
}
