package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ChunkMap is the readiness bitmap of one blob: a chunk_map file mapped
// shared into memory (or an anonymous mapping when not persistent). Bits
// are set and cleared with 32-bit atomic compare-and-swap on the aligned
// word holding the chunk's byte, which is atomic with respect to the byte
// CAS upstream nydusd uses on the same file.
type ChunkMap struct {
	path  string // "" for an in-memory map
	count uint32
	mem   []byte
	ready atomic.Int64 // bits this process has seen set (approximate across processes)
}

// ErrOtherTable reports a chunk map whose bits were set for another chunk
// table than the caller's: its data is another image's view of the blob.
var ErrOtherTable = errors.New("cache: chunk map belongs to another chunk table")

// OpenChunkMap opens or creates the chunk map at path for count chunks. A
// file of the wrong size or with a bad header is rebuilt (all chunks not
// ready); rebuilt reports that. With path "" the map lives in memory only.
func OpenChunkMap(path string, count uint32) (m *ChunkMap, rebuilt bool, err error) {
	return openChunkMap(path, count, nil)
}

// openChunkMap is OpenChunkMap that, with table, binds the file to a chunk
// table: a map recording another table's digest is ErrOtherTable; one
// recording none gets table's digest, and its bits are cleared first when
// any is set (they were set for a table nobody recorded).
func openChunkMap(path string, count uint32, table *[32]byte) (m *ChunkMap, rebuilt bool, err error) {
	size := MapSize(count)
	m = &ChunkMap{path: path, count: count}
	if path == "" {
		m.mem, err = unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANON)
		if err != nil {
			return nil, false, fmt.Errorf("cache: map in-memory chunk map: %w", err)
		}
		h := NewHeader()
		h.Marshal(m.mem)
		return m, false, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("cache: open chunk map: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return nil, false, fmt.Errorf("cache: lock chunk map %s: %w", path, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	rebuilt, err = prepareMapFile(f, size)
	if err != nil {
		return nil, false, fmt.Errorf("cache: chunk map %s: %w", path, err)
	}
	m.mem, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, false, fmt.Errorf("cache: map chunk map %s: %w", path, err)
	}
	if table != nil {
		if err := m.bind(*table); err != nil {
			unix.Munmap(m.mem)
			return nil, false, fmt.Errorf("cache: chunk map %s: %w", path, err)
		}
	}
	m.ready.Store(int64(m.countReady()))
	if m.count > 0 && m.ready.Load() == int64(m.count) && !m.Complete() {
		// Completed by writers that each saw only part of the map.
		atomic.StoreUint32(m.word(allReadyOffset), MagicAllReady)
		_ = m.sync()
	}
	return m, rebuilt, nil
}

// prepareMapFile makes f a valid chunk map of size bytes, keeping its
// content when it already is one.
func prepareMapFile(f *os.File, size int64) (rebuilt bool, err error) {
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	switch {
	case st.Size() == 0:
		return false, initMapFile(f, size)
	case st.Size() != size:
		return true, initMapFile(f, size)
	}
	hdr := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return false, err
	}
	if _, err := ParseHeader(hdr); err != nil {
		// An all-zero file is a creator that died between truncate and
		// header write (upstream has the same window): not a rebuild.
		return !allZero(f, size), initMapFile(f, size)
	}
	return false, nil
}

func allZero(f *os.File, size int64) bool {
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return false
	}
	for _, b := range buf {
		if b != 0 {
			return false
		}
	}
	return true
}

// initMapFile resets f to an empty chunk map: zero bitmap, fresh header.
func initMapFile(f *os.File, size int64) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	var hdr [HeaderSize]byte
	h := NewHeader()
	h.Marshal(hdr[:])
	// No sync: a header lost in a crash leaves an all-zero file (set up
	// again) or bits under a bad header (rebuilt); neither is trusted.
	_, err := f.WriteAt(hdr[:], 0)
	return err
}

// bind records table in the header, or checks the one recorded; the
// caller holds the file's lock.
func (m *ChunkMap) bind(table [32]byte) error {
	h, err := ParseHeader(m.mem)
	if err != nil {
		return err
	}
	if h.HasTable {
		if h.Table != table {
			return ErrOtherTable
		}
		return nil
	}
	if m.Complete() || m.countReady() > 0 {
		if err := m.Reset(); err != nil {
			return err
		}
	}
	binary.LittleEndian.PutUint32(m.mem[tableMagicOffset:], MagicTable)
	copy(m.mem[tableDigestOffset:tableDigestOffset+32], table[:])
	return m.sync()
}

// Reset marks every chunk not ready, durably (the header, with its table
// digest, stays).
func (m *ChunkMap) Reset() error {
	atomic.StoreUint32(m.word(allReadyOffset), 0)
	for off := int64(HeaderSize); off < int64(len(m.mem)); off += 4 {
		if off+4 <= int64(len(m.mem)) {
			atomic.StoreUint32(m.word(off), 0)
		} else {
			clear(m.mem[off:])
		}
	}
	m.ready.Store(0)
	return m.sync()
}

// Count returns the number of chunks the map covers.
func (m *ChunkMap) Count() uint32 { return m.count }

func (m *ChunkMap) word(off int64) *uint32 {
	return (*uint32)(unsafe.Pointer(&m.mem[off&^3]))
}

// bitInWord returns the word holding chunk i's bit and the bit's mask in
// that (little-endian) word.
func (m *ChunkMap) bitInWord(i uint32) (*uint32, uint32) {
	off, mask := bitPos(i)
	return m.word(off), uint32(mask) << (8 * (off & 3))
}

// Complete reports whether the header marks every chunk ready.
func (m *ChunkMap) Complete() bool {
	return atomic.LoadUint32(m.word(allReadyOffset)) == MagicAllReady
}

// IsReady reports whether chunk i is cached.
func (m *ChunkMap) IsReady(i uint32) bool {
	if i >= m.count {
		return false
	}
	if m.Complete() {
		return true
	}
	w, mask := m.bitInWord(i)
	return atomic.LoadUint32(w)&mask != 0
}

// SetReady marks chunk i cached. The caller must have made its data
// durable first. When every chunk is ready the header is marked complete.
func (m *ChunkMap) SetReady(i uint32) error {
	if i >= m.count {
		return fmt.Errorf("cache: chunk %d out of range (%d chunks)", i, m.count)
	}
	w, mask := m.bitInWord(i)
	for {
		old := atomic.LoadUint32(w)
		if old&mask != 0 {
			return nil
		}
		if atomic.CompareAndSwapUint32(w, old, old|mask) {
			break
		}
	}
	// The local count misses bits other processes set: resynchronise it
	// now and then, and whenever it claims completion.
	if n := m.ready.Add(1); n >= int64(m.count) || n%1024 == 0 {
		counted := m.countReady()
		m.ready.Store(int64(counted))
		if counted == m.count {
			atomic.StoreUint32(m.word(allReadyOffset), MagicAllReady)
			return m.sync()
		}
	}
	return nil
}

// Clear marks chunk i not cached (and the map not complete).
func (m *ChunkMap) Clear(i uint32) error {
	if i >= m.count {
		return fmt.Errorf("cache: chunk %d out of range (%d chunks)", i, m.count)
	}
	if m.Complete() {
		atomic.CompareAndSwapUint32(m.word(allReadyOffset), MagicAllReady, 0)
	}
	w, mask := m.bitInWord(i)
	for {
		old := atomic.LoadUint32(w)
		if old&mask == 0 {
			return nil
		}
		if atomic.CompareAndSwapUint32(w, old, old&^mask) {
			m.ready.Add(-1)
			return nil
		}
	}
}

// Ready returns the number of chunks marked ready.
func (m *ChunkMap) Ready() uint32 {
	if m.Complete() {
		return m.count
	}
	return m.countReady()
}

// countReady counts the set bits of chunks 0..count-1 (padding bits of the
// last byte are ignored).
func (m *ChunkMap) countReady() uint32 {
	n := 0
	end := int64(HeaderSize) + int64(m.count/8)
	off := int64(HeaderSize)
	for ; off+4 <= end; off += 4 {
		n += bits.OnesCount32(atomic.LoadUint32(m.word(off)))
	}
	for ; off < end; off++ {
		n += bits.OnesCount8(m.byteAt(off))
	}
	if rem := m.count % 8; rem != 0 {
		n += bits.OnesCount8(m.byteAt(end) &^ (0xff >> rem))
	}
	return uint32(n)
}

func (m *ChunkMap) byteAt(off int64) byte {
	return byte(atomic.LoadUint32(m.word(off)) >> (8 * (off & 3)))
}

func (m *ChunkMap) sync() error {
	if m.path == "" {
		return nil
	}
	if err := unix.Msync(m.mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("cache: sync chunk map %s: %w", m.path, err)
	}
	return nil
}

// Close unmaps the map. Bits need no sync: the data under every set bit
// is already durable, and a lost bit only costs a refetch.
func (m *ChunkMap) Close() error {
	if m.mem == nil {
		return nil
	}
	err := unix.Munmap(m.mem)
	m.mem = nil
	return err
}
