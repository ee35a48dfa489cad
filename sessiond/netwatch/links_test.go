package netwatch

import "testing"

func TestLinksBounded(t *testing.T) {
	var l links[int]
	for i := range maxLinks + 10 {
		if !l.set(i, true) {
			t.Fatalf("new link %d up: not news", i)
		}
		if len(l.up) > maxLinks {
			t.Fatalf("%d links remembered, bound is %d", len(l.up), maxLinks)
		}
	}
	if l.set(maxLinks+9, true) {
		t.Error("a link seen up since the table started over: news")
	}
	l.forget(maxLinks + 9)
	if !l.set(maxLinks+9, true) {
		t.Error("a forgotten link up: not news")
	}
}
