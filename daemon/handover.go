package daemon

import (
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// handoverFS wraps go-fuse's node bridge serving a writable overlay so that
// a successor daemon can serve the kernel connection it leaves (see
// nodejournal.go). Node IDs and file handles the kernel sees are the
// bridge's own in the first daemon of a session (generation 0); daemon
// generation g > 0 hands out g<<genShift|id and g<<32|fh, so they never
// meet those of its predecessors. A node ID of an earlier generation is
// resolved on first use by looking its journalled name up again, a file
// handle by opening its node again with the flags the request carries.
type handoverFS struct {
	fuse.RawFileSystem
	gen uint64
	t   *nodeTable
	log *slog.Logger

	mu    sync.Mutex
	old   map[uint64]*oldNode // kernel node ID of an earlier generation -> its node here
	rev   map[uint64]uint64   // bridge node ID -> the earlier kernel node ID it stands for
	oldFh map[uint64]uint64   // kernel handle of an earlier generation -> bridge handle
}

type oldNode struct {
	id      uint64 // bridge node ID
	lookups uint64 // the bridge's lookup count of it
}

// genShift places the daemon generation in node IDs; bridge node IDs stay
// below 1<<genShift.
const genShift = 40

func newHandoverFS(inner fuse.RawFileSystem, gen uint64, t *nodeTable, log *slog.Logger) *handoverFS {
	return &handoverFS{RawFileSystem: inner, gen: gen, t: t, log: log,
		old: map[uint64]*oldNode{}, rev: map[uint64]uint64{}, oldFh: map[uint64]uint64{}}
}

// setGen sets the generation before the session is served.
func (h *handoverFS) setGen(g uint64) { h.gen = g }

func (h *handoverFS) current(kid uint64) bool {
	return kid == fuse.FUSE_ROOT_ID || kid>>genShift == h.gen
}

// toBridge returns the bridge's node ID for the kernel's kid.
func (h *handoverFS) toBridge(kid uint64) (uint64, fuse.Status) { return h.toBridgeDepth(kid, 0) }

func (h *handoverFS) toBridgeDepth(kid uint64, depth int) (uint64, fuse.Status) {
	if h.current(kid) {
		return kid & (1<<genShift - 1), fuse.OK
	}
	h.mu.Lock()
	o := h.old[kid]
	h.mu.Unlock()
	if o != nil {
		return o.id, fuse.OK
	}
	return h.resolve(kid, depth)
}

// resolve looks an earlier generation's node up by its journalled name.
func (h *handoverFS) resolve(kid uint64, depth int) (uint64, fuse.Status) {
	r, ok := h.t.node(kid)
	loc := r.loc
	if !ok || depth > 4096 {
		h.log.Warn("overlay handover: node of a predecessor not in the journal", "node", kid)
		return 0, fuse.Status(syscall.ESTALE)
	}
	pid, st := h.toBridgeDepth(loc.parent, depth+1)
	if !st.Ok() {
		return 0, st
	}
	var out fuse.EntryOut
	st = h.RawFileSystem.Lookup(nil, &fuse.InHeader{NodeId: pid}, loc.name, &out)
	if !st.Ok() || out.NodeId == 0 {
		if st.Ok() {
			st = fuse.Status(syscall.ESTALE)
		}
		return 0, st
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.old[kid]; o != nil { // resolved meanwhile
		h.RawFileSystem.Forget(out.NodeId, 1)
		return o.id, fuse.OK
	}
	h.old[kid] = &oldNode{id: out.NodeId, lookups: 1}
	if _, taken := h.rev[out.NodeId]; !taken {
		h.rev[out.NodeId] = kid
	}
	return out.NodeId, fuse.OK
}

// adopt makes the bridge node bid stand for kid, an earlier generation's
// node at the name bid was just looked up by, unless either is mapped
// already: the kernel then keeps one node for the object.
func (h *handoverFS) adopt(kid, bid uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.rev[bid]; ok || h.old[kid] != nil {
		return
	}
	h.old[kid] = &oldNode{id: bid}
	h.rev[bid] = kid
}

// toKernel returns the kernel's node ID for a bridge node ID in a reply
// that counts as a lookup.
func (h *handoverFS) toKernel(bid uint64) uint64 {
	if bid == fuse.FUSE_ROOT_ID || bid == 0 {
		return bid
	}
	if h.gen > 0 {
		h.mu.Lock()
		kid, ok := h.rev[bid]
		if ok {
			h.old[kid].lookups++
		}
		h.mu.Unlock()
		if ok {
			return kid
		}
	}
	return h.gen<<genShift | bid
}

func (h *handoverFS) hdr(in *fuse.InHeader) fuse.Status {
	id, st := h.toBridge(in.NodeId)
	in.NodeId = id
	return st
}

// entry translates a reply's node and journals where it is. A node of an
// earlier generation keeps the generation number the kernel knows (a
// copied-up lower file, for one, has another here).
func (h *handoverFS) entry(parent uint64, name string, out *fuse.EntryOut) {
	if out.NodeId == 0 {
		return
	}
	if h.gen > 0 && name != "." && name != ".." {
		if kid, ok := h.t.idAt(parent, name); ok && !h.current(kid) {
			h.adopt(kid, out.NodeId)
		}
	}
	out.NodeId = h.toKernel(out.NodeId)
	if !h.current(out.NodeId) {
		if r, ok := h.t.node(out.NodeId); ok {
			out.Generation = r.gen
		}
	}
	if name != "." && name != ".." {
		h.journal(h.t.at(out.NodeId, out.Generation, parent, name))
	}
}

func (h *handoverFS) journal(err error) {
	if err != nil {
		h.log.Error("overlay handover: node journal", "err", err)
	}
}

func (h *handoverFS) fhOut(fh uint64) uint64 {
	if fh == 0 {
		return 0
	}
	return h.gen<<32 | fh
}

// fhIn returns the bridge handle for the kernel's fh; ok false: an
// earlier generation's handle not opened here yet.
func (h *handoverFS) fhIn(fh uint64) (uint64, bool) {
	if fh == 0 {
		return 0, true
	}
	if fh>>32 == h.gen {
		return fh & (1<<32 - 1), true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.oldFh[fh]
	return b, ok
}

// reopen opens node (a bridge ID) again for an earlier generation's
// handle fh.
func (h *handoverFS) reopen(node, fh uint64, flags uint32, dir bool) (uint64, fuse.Status) {
	in := &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: node}, Flags: flags &^ (syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC)}
	var out fuse.OpenOut
	var st fuse.Status
	if dir {
		st = h.RawFileSystem.OpenDir(nil, in, &out)
	} else {
		st = h.RawFileSystem.Open(nil, in, &out)
	}
	if !st.Ok() {
		return 0, st
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.oldFh[fh]; ok { // opened meanwhile
		rel := &fuse.ReleaseIn{InHeader: in.InHeader, Fh: out.Fh}
		if dir {
			h.RawFileSystem.ReleaseDir(rel)
		} else {
			h.RawFileSystem.Release(nil, rel)
		}
		return b, fuse.OK
	}
	h.oldFh[fh] = out.Fh
	return out.Fh, fuse.OK
}

// fileFh translates the handle of a request on the bridge node; flags
// are the open flags to reopen an earlier generation's handle with.
func (h *handoverFS) fileFh(node uint64, fh *uint64, flags uint32, dir bool) fuse.Status {
	b, ok := h.fhIn(*fh)
	if ok {
		*fh = b
		return fuse.OK
	}
	b, st := h.reopen(node, *fh, flags, dir)
	*fh = b
	return st
}

// releaseFh translates a released handle; ok false: nothing to release
// here.
func (h *handoverFS) releaseFh(fh *uint64) bool {
	if *fh == 0 || *fh>>32 == h.gen {
		*fh &= 1<<32 - 1
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.oldFh[*fh]
	delete(h.oldFh, *fh)
	*fh = b
	return ok
}

// optionalFh translates a handle the request can do without.
func (h *handoverFS) optionalFh(fh *uint64) bool {
	b, ok := h.fhIn(*fh)
	*fh = b
	return ok
}

// nodeJournalName is the node journal's name in the overlay's work dir.
const nodeJournalName = "nydusd-nodes"

// openNodes opens the node journal when the session is a writable
// overlay a successor may take over; fresh starts a new one. d.mu is
// held.
func (d *Daemon) openNodes(fresh bool) error {
	if d.opts.Supervisor == "" || d.direct == nil || d.direct.Overlay == nil {
		return nil
	}
	t, err := openNodeTable(filepath.Join(d.direct.Config.Overlay.WorkDir, nodeJournalName), fresh)
	if err == nil && fresh {
		err = t.serving(d.ovGen)
	}
	if err != nil {
		return err
	}
	d.nodes = t
	return nil
}

// resumeOverlay makes a writable overlay taken over the daemon's own once
// its predecessor has exited: it takes the overlay's directories and reads
// the journal the predecessor wrote to the end. d.mu is held.
func (d *Daemon) resumeOverlay() error {
	if d.nodes == nil {
		return nil
	}
	if err := d.direct.Overlay.Lock(supervisorTimeout); err != nil {
		return err
	}
	if err := d.nodes.replay(); err != nil {
		return err
	}
	// A supervisor may hold a state older than the last daemon's.
	if g := d.nodes.newestGen() + 1; g > d.ovGen {
		d.ovGen = g
		d.handover.setGen(g)
	}
	return d.nodes.serving(d.ovGen)
}
