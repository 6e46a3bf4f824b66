package zran

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"sync"
)

// aheadReader reads its source on its own goroutine, a block ahead of the
// consumer, and hashes every block (sha256) there: reading and hashing
// the gzip layer then run beside the inflater. The digest is complete
// once Read has returned the source's end.
type aheadReader struct {
	full chan aheadBlock
	free chan []byte
	stop chan struct{}
	once sync.Once

	cur  []byte // unread part of the block being consumed
	buf  []byte // that block's buffer, returned to free when used up
	err  error
	sum  hash.Hash
	size int64
}

type aheadBlock struct {
	b   []byte
	err error
}

const (
	aheadBlockSize = 1 << 20
	aheadBlocks    = 3
)

func newAheadReader(r io.Reader) *aheadReader {
	a := &aheadReader{full: make(chan aheadBlock, aheadBlocks), free: make(chan []byte, aheadBlocks),
		stop: make(chan struct{}), sum: sha256.New()}
	for range aheadBlocks {
		a.free <- make([]byte, aheadBlockSize)
	}
	go a.run(r)
	return a
}

func (a *aheadReader) run(r io.Reader) {
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		n, err := io.ReadAtLeast(r, buf, len(buf))
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		a.sum.Write(buf[:n])
		select {
		case a.full <- aheadBlock{b: buf[:n], err: err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		blk := <-a.full
		a.buf, a.cur, a.err = blk.b, blk.b, blk.err
		a.size += int64(len(blk.b))
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// digest returns the sha256 of the bytes delivered so far; call it only
// after Read has returned an error (the goroutine has then stopped
// hashing).
func (a *aheadReader) digest() []byte { return a.sum.Sum(nil) }

// close stops the goroutine (it may still finish a read in progress).
func (a *aheadReader) close() { a.once.Do(func() { close(a.stop) }) }
