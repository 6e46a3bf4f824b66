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
)

// nodeLoc is where a node is: its parent's kernel node ID and its name.
type nodeLoc struct {
	parent uint64
	name   string
}

// nodeTable is the journal's content: the kernel node IDs with their
// locations, kept in memory and in the journal file.
type nodeTable struct {
	mu    sync.Mutex
	f     *os.File
	byID  map[uint64]nodeLoc
	byLoc map[nodeLoc]uint64
	buf   []byte
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
	return &nodeTable{f: f, byID: map[uint64]nodeLoc{}, byLoc: map[nodeLoc]uint64{}}, nil
}

func (t *nodeTable) close() error { return t.f.Close() }

// replay reads the journal from the start; a record cut short by a crash
// ends it.
func (t *nodeTable) replay() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	data, err := io.ReadAll(io.NewSectionReader(t.f, 0, 1<<62))
	if err != nil {
		return fmt.Errorf("node journal: %w", err)
	}
	for len(data) > 0 {
		kind, id, loc, n, ok := decodeRecord(data)
		if !ok {
			break
		}
		data = data[n:]
		switch kind {
		case recNode:
			t.apply(id, loc)
		case recForget:
			t.drop(id)
		case recUnlink:
			t.unlinkLoc(loc)
		default:
			return errors.New("unknown record kind")
		}
	}
	return nil
}

// Record layout: kind (1 byte), id (8), parent (8), name length (2), name.
func decodeRecord(b []byte) (kind byte, id uint64, loc nodeLoc, n int, ok bool) {
	const head = 1 + 8 + 8 + 2
	if len(b) < head {
		return 0, 0, nodeLoc{}, 0, false
	}
	l := int(binary.LittleEndian.Uint16(b[17:]))
	if len(b) < head+l {
		return 0, 0, nodeLoc{}, 0, false
	}
	return b[0], binary.LittleEndian.Uint64(b[1:]), nodeLoc{parent: binary.LittleEndian.Uint64(b[9:]), name: string(b[head : head+l])}, head + l, true
}

// write appends one record; t.mu is held. A failing journal is logged by
// the caller: the session goes on, only its successor loses nodes.
func (t *nodeTable) write(kind byte, id uint64, loc nodeLoc) error {
	b := t.buf[:0]
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.LittleEndian.AppendUint64(b, loc.parent)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(loc.name)))
	b = append(b, loc.name...)
	t.buf = b
	_, err := t.f.Write(b)
	return err
}

func (t *nodeTable) apply(id uint64, loc nodeLoc) {
	if old, ok := t.byID[id]; ok && t.byLoc[old] == id {
		delete(t.byLoc, old)
	}
	if other, ok := t.byLoc[loc]; ok && other != id {
		delete(t.byID, other)
	}
	t.byID[id], t.byLoc[loc] = loc, id
}

func (t *nodeTable) drop(id uint64) {
	if loc, ok := t.byID[id]; ok {
		if t.byLoc[loc] == id {
			delete(t.byLoc, loc)
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

// at records that id is at (parent, name), unless that is known already.
func (t *nodeTable) at(id, parent uint64, name string) error {
	loc := nodeLoc{parent: parent, name: name}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.byID[id]; ok && cur == loc {
		return nil
	}
	t.apply(id, loc)
	return t.write(recNode, id, loc)
}

// forget records that the kernel dropped id.
func (t *nodeTable) forget(id uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[id]; !ok {
		return nil
	}
	t.drop(id)
	return t.write(recForget, id, nodeLoc{})
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
	return t.write(recUnlink, 0, loc)
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
	if bok && !exchange {
		t.unlinkLoc(to)
		err = t.write(recUnlink, 0, to)
	}
	if aok {
		t.apply(a, to)
		err = errors.Join(err, t.write(recNode, a, to))
	}
	if exchange && bok {
		t.apply(b, from)
		err = errors.Join(err, t.write(recNode, b, from))
	}
	return err
}

// loc returns where id is.
func (t *nodeTable) loc(id uint64) (nodeLoc, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.byID[id]
	return l, ok
}
