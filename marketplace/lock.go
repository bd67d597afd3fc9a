package marketplace

import (
	"context"
	"fmt"
	"sync"
)

// read runs fn, which only reads, in a read-only transaction if the store
// has them (Viewer), and in InTx otherwise. Reads that decide what to
// write are made under the resource's key lock, so they see every commit
// made under it; the commits themselves run in InTx.
func (p *Processor) read(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if p.viewer != nil {
		return p.viewer.View(ctx, fn)
	}
	return p.store.InTx(ctx, fn)
}

func entitlementKey(id string) string { return "entitlement:" + id }

func accountKey(id string) string { return "account:" + id }

// lock serialises work on key in this process and, with a KeyLocker store,
// across processes.
func (p *Processor) lock(ctx context.Context, key string) (func(), error) {
	unlockLocal, err := p.locks.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	if p.locker == nil {
		return unlockLocal, nil
	}
	unlockShared, err := p.locker.LockKey(ctx, key)
	if err != nil {
		unlockLocal()
		return nil, fmt.Errorf("marketplace: locking %s: %w", key, err)
	}
	return func() { unlockShared(); unlockLocal() }, nil
}

// keyedMutex is a set of mutexes, one per key in use, that can be waited
// for with a context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in the channel = locked
	refs int           // holders and waiters
}

func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("marketplace: waiting for %s: %w", key, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.held
			release()
		})
	}, nil
}
