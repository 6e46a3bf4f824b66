package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNodeJournalReplay: a successor's replay of the journal knows what
// the writer knew: where each node is after renames (an exchange
// included), unlinks and forgets, each node's generation, and the cached
// handles still open; a record cut short by a crash ends the replay.
func TestNodeJournalReplay(t *testing.T) {
	p := filepath.Join(t.TempDir(), nodeJournalName)
	w, err := openNodeTable(p, true)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.at(2, 0, 1, "dir"))
	must(w.at(3, 77, 2, "a"))
	must(w.at(4, 0, 2, "b"))
	must(w.at(5, 0, 1, "gone"))
	must(w.at(6, 0, 1, "forgotten"))
	must(w.at(7, 0, 1, "x"))
	must(w.at(8, 0, 1, "y"))
	must(w.rename(2, "a", 1, "moved", false))                 // 3 moves
	must(w.rename(2, "b", 1, "moved", false))                 // 4 replaces it: 3 is unlinked
	must(w.rename(1, "x", 1, "y", true))                      // 7 and 8 swap
	must(w.unlink(1, "gone"))                                 // 5 goes
	must(w.forget(6))                                         // 6 goes
	must(w.at(3, 77, 1, "relinked"))                          // 3 is back under another name
	if pt, err := w.opened(100, 4, true); err != nil || !pt { // passthrough: not recorded
		t.Fatalf("passthrough open: %v %v", pt, err)
	}
	if pt, err := w.opened(101, 3, false); err != nil || pt {
		t.Fatalf("cached open: %v %v", pt, err)
	}
	if pt, err := w.opened(102, 3, true); err != nil || pt {
		t.Fatalf("passthrough open of a node with a cached handle: %v %v (want a cached one)", pt, err)
	}
	must(w.released(101))
	must(w.serving(3))
	must(w.serving(2))
	must(w.close())
	// A record cut short.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{recNode, 9, 0, 0})
	f.Close()

	r, err := openNodeTable(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	must(r.replay())
	want := map[uint64]nodeRec{
		2: {nodeLoc{1, "dir"}, 0},
		3: {nodeLoc{1, "relinked"}, 77},
		4: {nodeLoc{1, "moved"}, 0},
		7: {nodeLoc{1, "y"}, 0},
		8: {nodeLoc{1, "x"}, 0},
	}
	for id, rec := range want {
		if got, ok := r.node(id); !ok || got != rec {
			t.Errorf("node %d: %+v %v, want %+v", id, got, ok, rec)
		}
	}
	for _, id := range []uint64{5, 6, 9} {
		if got, ok := r.node(id); ok {
			t.Errorf("node %d: %+v, want none", id, got)
		}
	}
	if g := r.newestGen(); g != 3 {
		t.Errorf("newest generation %d, want 3", g)
	}
	if id, ok := r.idAt(1, "moved"); !ok || id != 4 {
		t.Errorf("at moved: %d %v, want 4", id, ok)
	}
	// Handle 102 of node 3 is still a cached one: no passthrough for 3.
	if pt, _ := r.opened(200, 3, true); pt {
		t.Error("passthrough open of node 3 after the replay, whose cached handle 102 is open")
	}
	if pt, _ := r.opened(201, 4, true); !pt {
		t.Error("no passthrough open of node 4, which has no cached handle")
	}
}

// TestNodeJournalCompact: a journal written afresh replays to the same
// nodes, places, generations and cached handles, and later records still
// append to it.
func TestNodeJournalCompact(t *testing.T) {
	p := filepath.Join(t.TempDir(), nodeJournalName)
	w, err := openNodeTable(p, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(1000) {
		if err := w.at(10+i, i, 1, "n"+string(rune('a'+i%26))+string(rune('a'+i/26))); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := w.forget(10 + i); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.at(5000, 1, 1, "nba") // a second node at the place of node 11, which keeps it for resolution
	w.opened(7, 11, false)
	w.serving(4)
	before, _ := os.Stat(p)
	w.mu.Lock()
	err = w.compact()
	w.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if after.Size() >= before.Size() {
		t.Errorf("compacted journal of %d bytes, was %d", after.Size(), before.Size())
	}
	if err := w.at(6000, 9, 11, "late"); err != nil {
		t.Fatal(err)
	}
	r, err := openNodeTable(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if err := r.replay(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(r.byID) != len(w.byID) || len(r.byLoc) != len(w.byLoc) {
		t.Fatalf("replayed %d nodes at %d places, want %d at %d", len(r.byID), len(r.byLoc), len(w.byID), len(w.byLoc))
	}
	for id, rec := range w.byID {
		if r.byID[id] != rec {
			t.Errorf("node %d: %+v, want %+v", id, r.byID[id], rec)
		}
	}
	for loc, id := range w.byLoc {
		if r.byLoc[loc] != id {
			t.Errorf("at %+v: node %d, want %d", loc, r.byLoc[loc], id)
		}
	}
	if r.maxGen != 4 || r.cachedN[11] != 1 {
		t.Errorf("generation %d, cached handles of node 11: %d; want 4 and 1", r.maxGen, r.cachedN[11])
	}
	w.close()
}
