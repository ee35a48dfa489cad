// Package rate is the token bucket the broker limits requests with, keyed
// by who asks: a technician's key, or an address. A key's bucket holds
// Burst tokens and refills one every Every.
//
// Keys are callers the broker has already authenticated (a technician's
// peer ID), or remote addresses at the one door that admits strangers (the
// console's sign-in). The table is bounded: past 10,000 keys, the buckets
// that have refilled are dropped, since a full bucket is what a new one is.
package rate

import (
	"sync"
	"time"
)

// maxKeys is the table size past which refilled buckets are dropped.
const maxKeys = 10_000

// Limiter limits requests per key. Its zero value is not usable: set Burst
// and Every. It is safe for concurrent use.
type Limiter struct {
	// Burst is how many requests a key may make at once.
	Burst int
	// Every is how often a key gets one more request, up to Burst.
	Every time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket // mu guards
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Allow takes one token from key's bucket at now and reports whether
// there was one.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	if len(l.buckets) > maxKeys {
		l.dropRefilledLocked(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(l.Burst), at: now}
		l.buckets[key] = b
	}
	b.tokens = min(float64(l.Burst), b.tokens+float64(now.Sub(b.at))/float64(l.Every))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// dropRefilledLocked forgets the buckets that are full again at now.
func (l *Limiter) dropRefilledLocked(now time.Time) {
	full := time.Duration(l.Burst) * l.Every
	for k, b := range l.buckets {
		if now.Sub(b.at) > full {
			delete(l.buckets, k)
		}
	}
}
