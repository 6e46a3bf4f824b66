package daemon

import (
	"errors"
	"fmt"
	"os"
)

// The node journal grows with every node the kernel is given and
// forgets; once what was appended is both over compactMin and
// compactRatio times what the journal holds live, it is written afresh
// with only the live records and renamed into place (a crash midway
// leaves the old journal).
const (
	compactMin   = 32 << 20
	compactRatio = 8
)

// liveSize estimates the bytes of a journal holding only what t holds;
// t.mu is held.
func (t *nodeTable) liveSize() int64 {
	const rec, name = 27, 16
	return int64(len(t.byID)*(rec+name) + len(t.cachedFh)*rec + rec)
}

// compact writes the journal afresh; t.mu is held.
func (t *nodeTable) compact() (err error) {
	tmp := t.path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("node journal: compact: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	old, written := t.f, t.written
	t.f, t.written = f, 0 // what compact writes never triggers compact
	defer func() {
		if err != nil {
			t.written = written
		}
	}()
	defer func() {
		if err != nil {
			t.f = old
		}
	}()
	err = t.write(recGen, t.maxGen, nodeRec{})
	// The node last journalled at a place is written last, so a replay
	// finds it there.
	for id, r := range t.byID {
		if t.byLoc[r.loc] != id {
			err = errors.Join(err, t.write(recNode, id, r))
		}
	}
	for id, r := range t.byID {
		if t.byLoc[r.loc] == id {
			err = errors.Join(err, t.write(recNode, id, r))
		}
	}
	for fh, node := range t.cachedFh {
		err = errors.Join(err, t.write(recCached, fh, nodeRec{loc: nodeLoc{parent: node}}))
	}
	if err == nil {
		err = os.Rename(tmp, t.path)
	}
	if err != nil {
		return fmt.Errorf("node journal: compact: %w", err)
	}
	old.Close()
	return nil
}
