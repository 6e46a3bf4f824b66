package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// A writable overlay served by go-fuse's node bridge hands the kernel node
// IDs from a counter and file handles from a table, both in the process.
// For a successor to serve the same kernel connection, every node ID the
// kernel holds is written, as it is handed out, to a journal beside the
// overlay's work directory: where the node is (parent node ID, name), and
// later renames, unlinks and forgets. A successor replays the journal and
// resolves a node ID it never handed out by looking its name up again.
// The journal is appended with write(2) and never synced: page-cache
// writes survive a SIGKILL of the daemon.

// Journal record kinds.
const (
	recNode   = 'N' // id is at (parent, name)
	recForget = 'D' // the kernel dropped id
	recUnlink = 'U' // nothing is at (parent, name) any more
	recCached = 'C' // handle id (parent: its node) is a cached open, not passthrough
	recClosed = 'c' // the cached handle id was released
	recGen    = 'G' // a daemon of generation id serves the session
)

// nodeLoc is where a node is: its parent's kernel node ID and its name.
type nodeLoc struct {
	parent uint64
	name   string
}

// nodeRec is what the journal knows of a node: where it is, and the
// generation the kernel was told (it takes a node whose generation
// changes for a stale one).
type nodeRec struct {
	loc nodeLoc
	gen uint64
}

// nodeTable is the journal's content: the kernel node IDs with their
// locations, kept in memory and in the journal file.
type nodeTable struct {
	mu   sync.Mutex
	path string
	f    *os.File
	// written counts the bytes appended since the journal was last
	// written afresh (compact.go).
	written int64
	byID    map[uint64]nodeRec
	byLoc   map[nodeLoc]uint64
	// The kernel refuses to mix cached and passthrough opens of a file:
	// cached handles open (handle -> node) and their count per node.
	cachedFh map[uint64]uint64
	cachedN  map[uint64]int
	// maxGen is the newest daemon generation journalled.
	maxGen uint64
	buf    []byte
}

// openNodeTable opens the journal at path; fresh truncates it (a new
// session), else replay reads what a predecessor wrote.
func openNodeTable(path string, fresh bool) (*nodeTable, error) {
	flags := os.O_RDWR | os.O_CREATE | os.O_APPEND
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node journal: %w", err)
	}
	return &nodeTable{path: path, f: f, byID: map[uint64]nodeRec{}, byLoc: map[nodeLoc]uint64{},
		cachedFh: map[uint64]uint64{}, cachedN: map[uint64]int{}}, nil
}

func (t *nodeTable) close() error { return t.f.Close() }

// replay reads the journal from the start; a record cut short by a crash
// ends it.
func (t *nodeTable) replay() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The predecessor may have compacted it since it was opened.
	f, err := os.OpenFile(t.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("node journal: %w", err)
	}
	t.f.Close()
	t.f = f
	data, err := io.ReadAll(io.NewSectionReader(t.f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("node journal: %w", err)
	}
	for len(data) > 0 {
		kind, id, r, n, ok := decodeRecord(data)
		if !ok {
			break
		}
		data = data[n:]
		loc := r.loc
		switch kind {
		case recNode:
			t.apply(id, r)
		case recForget:
			t.drop(id)
		case recUnlink:
			t.unlinkLoc(loc)
		case recCached:
			t.addCached(id, loc.parent)
		case recClosed:
			t.dropCached(id)
		case recGen:
			t.maxGen = max(t.maxGen, id)
		default:
			return errors.New("unknown record kind")
		}
	}
	return nil
}

// Record layout: kind (1 byte), id (8), parent (8), generation (8), name
// length (2), name.
func decodeRecord(b []byte) (kind byte, id uint64, r nodeRec, n int, ok bool) {
	const head = 1 + 8 + 8 + 8 + 2
	if len(b) < head {
		return 0, 0, nodeRec{}, 0, false
	}
	l := int(binary.LittleEndian.Uint16(b[25:]))
	if len(b) < head+l {
		return 0, 0, nodeRec{}, 0, false
	}
	r = nodeRec{loc: nodeLoc{parent: binary.LittleEndian.Uint64(b[9:]), name: string(b[head : head+l])}, gen: binary.LittleEndian.Uint64(b[17:])}
	return b[0], binary.LittleEndian.Uint64(b[1:]), r, head + l, true
}

// write appends one record; t.mu is held. A failing journal is logged by
// the caller: the session goes on, only its successor loses nodes.
func (t *nodeTable) write(kind byte, id uint64, r nodeRec) error {
	loc := r.loc
	b := t.buf[:0]
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, loc.parent)
	b = binary.LittleEndian.AppendUint64(b, r.gen)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(loc.name)))
	b = append(b, loc.name...)
	t.buf = b
	_, err := t.f.Write(b)
	t.written += int64(len(b))
	if err == nil && t.written > compactMin && t.written > compactRatio*t.liveSize() {
		err = t.compact()
	}
	return err
}

func (t *nodeTable) apply(id uint64, r nodeRec) {
	if old, ok := t.byID[id]; ok && t.byLoc[old.loc] == id {
		delete(t.byLoc, old.loc)
	}
	// Another ID at the same place (the kernel may hold two nodes of
	// one object across a handover) keeps its place, for resolution.
	t.byID[id], t.byLoc[r.loc] = r, id
}

func (t *nodeTable) drop(id uint64) {
	if r, ok := t.byID[id]; ok {
		if t.byLoc[r.loc] == id {
			delete(t.byLoc, r.loc)
		}
		delete(t.byID, id)
	}
}

func (t *nodeTable) unlinkLoc(loc nodeLoc) {
	if id, ok := t.byLoc[loc]; ok {
		delete(t.byLoc, loc)
		delete(t.byID, id)
	}
}

// at records that id, of generation gen, is at (parent, name), unless
// that is known already.
func (t *nodeTable) at(id, gen, parent uint64, name string) error {
	r := nodeRec{loc: nodeLoc{parent: parent, name: name}, gen: gen}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.byID[id]; ok && cur == r {
		return nil
	}
	t.apply(id, r)
	return t.write(recNode, id, r)
}

// forget records that the kernel dropped id.
func (t *nodeTable) forget(id uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[id]; !ok {
		return nil
	}
	t.drop(id)
	return t.write(recForget, id, nodeRec{})
}

// unlink records that (parent, name) is gone.
func (t *nodeTable) unlink(parent uint64, name string) error {
	loc := nodeLoc{parent: parent, name: name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byLoc[loc]; !ok {
		return nil
	}
	t.unlinkLoc(loc)
	return t.write(recUnlink, 0, nodeRec{loc: loc})
}

// rename records a rename of (oldParent, oldName) to (newParent, newName);
// exchange swaps the two.
func (t *nodeTable) rename(oldParent uint64, oldName string, newParent uint64, newName string, exchange bool) error {
	from, to := nodeLoc{oldParent, oldName}, nodeLoc{newParent, newName}
	t.mu.Lock()
	defer t.mu.Unlock()
	a, aok := t.byLoc[from]
	b, bok := t.byLoc[to]
	var err error
	ra, rb := t.byID[a], t.byID[b]
	if bok && !exchange {
		t.unlinkLoc(to)
		err = t.write(recUnlink, 0, nodeRec{loc: to})
	}
	if aok {
		ra.loc = to
		t.apply(a, ra)
		err = errors.Join(err, t.write(recNode, a, ra))
	}
	if exchange && bok {
		rb.loc = from
		t.apply(b, rb)
		err = errors.Join(err, t.write(recNode, b, rb))
	}
	return err
}

func (t *nodeTable) addCached(fh, node uint64) {
	if _, ok := t.cachedFh[fh]; !ok {
		t.cachedFh[fh] = node
		t.cachedN[node]++
	}
}

func (t *nodeTable) dropCached(fh uint64) bool {
	node, ok := t.cachedFh[fh]
	if !ok {
		return false
	}
	delete(t.cachedFh, fh)
	if t.cachedN[node]--; t.cachedN[node] <= 0 {
		delete(t.cachedN, node)
	}
	return true
}

// opened records a handle fh of node handed to the kernel; passthrough
// reports whether it is a passthrough one. It returns false when the
// kernel holds cached handles of node and so refuses passthrough: the
// caller answers with a cached handle, which it records.
func (t *nodeTable) opened(fh, node uint64, passthrough bool) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if passthrough && t.cachedN[node] == 0 {
		return true, nil
	}
	t.addCached(fh, node)
	return false, t.write(recCached, fh, nodeRec{loc: nodeLoc{parent: node}})
}

// released records that the kernel released fh.
func (t *nodeTable) released(fh uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dropCached(fh) {
		return nil
	}
	return t.write(recClosed, fh, nodeRec{})
}

// serving records that a daemon of generation gen serves the session, so
// that a successor never picks a generation in use, even from a state
// taken before this daemon's.
func (t *nodeTable) serving(gen uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxGen = max(t.maxGen, gen)
	return t.write(recGen, gen, nodeRec{})
}

// newestGen returns the newest daemon generation journalled.
func (t *nodeTable) newestGen() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxGen
}

// idAt returns the node ID last journalled at (parent, name).
func (t *nodeTable) idAt(parent uint64, name string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.byLoc[nodeLoc{parent: parent, name: name}]
	return id, ok
}

// node returns what the journal knows of id.
func (t *nodeTable) node(id uint64) (nodeRec, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.byID[id]
	return r, ok
}
