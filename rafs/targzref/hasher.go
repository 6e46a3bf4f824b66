package targzref

import (
	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

// hasher computes chunk digests on its own goroutine, so sha256 runs
// beside the inflater instead of after it. Chunks are copied into arenas
// (whole batches of small files go in one hand-over); each chunk's digest
// is written to its *digest.Digest before the arena is returned, and
// wait returns once every chunk handed over is digested.
type hasher struct {
	arenaSize int
	free      chan []byte
	jobs      chan hashJob
	done      chan struct{}

	cur  []byte
	refs []hashRef
}

type hashJob struct {
	arena []byte
	refs  []hashRef
}

// hashRef is one chunk of an arena: its bytes and where its digest goes.
type hashRef struct {
	off, n int
	out    *digest.Digest
}

// hashArenas is how many arenas circulate: the inflater can run this many
// arenas ahead of the digests.
const hashArenas = 4

func newHasher(chunkSize int) *hasher {
	h := &hasher{arenaSize: max(chunkSize, 1<<20), free: make(chan []byte, hashArenas), jobs: make(chan hashJob, hashArenas), done: make(chan struct{})}
	for range hashArenas {
		h.free <- make([]byte, 0, h.arenaSize)
	}
	h.cur = <-h.free
	go h.run()
	return h
}

func (h *hasher) run() {
	defer close(h.done)
	for j := range h.jobs {
		for _, r := range j.refs {
			*r.out = digest.Sum(layout.DigestSHA256, j.arena[r.off:r.off+r.n])
		}
		h.free <- j.arena[:0]
	}
}

// add queues data (copied) for digesting into out.
func (h *hasher) add(data []byte, out *digest.Digest) {
	if len(h.cur)+len(data) > h.arenaSize {
		h.flush()
	}
	h.refs = append(h.refs, hashRef{off: len(h.cur), n: len(data), out: out})
	h.cur = append(h.cur, data...)
}

func (h *hasher) flush() {
	if len(h.refs) == 0 {
		return
	}
	h.jobs <- hashJob{arena: h.cur, refs: h.refs}
	h.cur, h.refs = <-h.free, nil
}

// wait digests what is queued and stops the goroutine; the digests are
// then all written. It may be called more than once.
func (h *hasher) wait() {
	if h.jobs == nil {
		return
	}
	h.flush()
	close(h.jobs)
	<-h.done
	h.jobs = nil
}
