// --deep-stack: every Write to and Read from the *tls.Conn is split into small pieces, each
// done by a fresh goroutine (so a fresh, smallest-size stack) after recursing to a depth that
// cycles past the whole starting stack, so every depth is visited in turn. At some depths the
// caller still fits but (*tls.Conn).Write's frame does not: Write's prologue calls morestack,
// which copies the stack to a bigger one and runs Write again from its first instruction, so a
// uprobe placed there fires twice for one call. Reads go into a buffer on the reading
// goroutine's own stack, and at some depths the stack is copied inside Read (a callee's
// prologue finds too little room), moving the buffer before Read fills it. Which depths do
// that is fixed for a given binary, so every run makes both happen several times (the report
// counts the Writes and Reads during which the stack was copied).
package main

import (
	"sync/atomic"
	"unsafe"
)

const (
	// Each Write moves at most this many bytes: a 512 KiB request makes about two thousand
	// Writes, so the depths cycle many times.
	deepStackWritePiece = 256
	// Each Read at most this many: the answers are about a kilobyte, and the depths must
	// still cycle through at least once (the band of depths where the stack is copied inside
	// Read is only a few levels wide).
	deepStackReadPiece = 1
	// Recursion depths cycle through 0..deepStackDepths-1. A level costs a few dozen bytes,
	// so the deepest ones overflow the 8 KiB starting stack before Write is reached.
	deepStackDepths = 320
)

var (
	// The next depth for Writes and for Reads: each cycles on its own, so which calls grow
	// the stack does not depend on how Writes and Reads interleave.
	writeDepthNext, readDepthNext       atomic.Int64
	writeStackGrowths, readStackGrowths atomic.Int64
)

// recurse calls f after depth nested calls of itself.
//
//go:noinline
func recurse(depth int, f func()) {
	if depth > 0 {
		recurse(depth-1, f)
		return
	}
	f()
}

// onDeepStack runs call on a fresh goroutine at the next depth of next and waits for it.
// call's frame is the one that calls into crypto/tls; grew reports whether the goroutine's
// stack was copied while call ran (a stack-allocated variable's address changed).
func onDeepStack(next *atomic.Int64, call func()) (grew bool) {
	depth := int((next.Add(1) - 1) % deepStackDepths)
	done := make(chan bool)
	go func() {
		recurse(depth, func() {
			var marker byte
			before := uintptr(unsafe.Pointer(&marker))
			call()
			done <- uintptr(unsafe.Pointer(&marker)) != before
		})
	}()
	return <-done
}

func (c *recordingConn) writeFromDeepStacks(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		piece := p[written:]
		if len(piece) > deepStackWritePiece {
			piece = piece[:deepStackWritePiece]
		}
		var n int
		var err error
		if onDeepStack(&writeDepthNext, func() { n, err = c.Conn.Write(piece) }) {
			writeStackGrowths.Add(1)
		}
		c.record(c.egress, piece[:n])
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (c *recordingConn) readFromDeepStack(p []byte) (int, error) {
	if len(p) > deepStackReadPiece {
		p = p[:deepStackReadPiece]
	}
	var n int
	var err error
	if onDeepStack(&readDepthNext, func() {
		// Into a buffer on this goroutine's stack ((*tls.Conn).Read does not let it escape):
		// when the stack is copied during Read, the buffer moves with it.
		var local [deepStackReadPiece]byte
		n, err = c.Conn.Read(local[:len(p)])
		copy(p, local[:n])
	}) {
		readStackGrowths.Add(1)
	}
	c.record(c.ingress, p[:n])
	return n, err
}
