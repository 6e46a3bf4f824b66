package merge

import (
	"errors"
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// ErrChunkSize reports a layer whose chunk size differs from the layers
// below it: one image has one chunk size.
var ErrChunkSize = errors.New("merge: layer chunk size differs from the layers below")

// Layers merges layer trees, lowest first, into one image tree with one
// blob table: each layer's whiteouts apply to the layers below it (a
// lowest layer's are dropped, having nothing to delete), its chunks are
// pointed at the merged table's index of their blob (Table), and the
// explicit-uid/gid flag and prefetch entries of every layer carry over.
type Layers struct {
	spec   WhiteoutSpec
	before func(base, layer *tree.Inode)
	tree   *tree.Tree
	table  Table
}

// LayersOption configures NewLayers.
type LayersOption func(*Layers) error

// WithWhiteoutSpec sets how the layers mark deletions (default OCI).
func WithWhiteoutSpec(s WhiteoutSpec) LayersOption {
	return func(m *Layers) error {
		if s != WhiteoutOCI && s != WhiteoutOverlayfs && s != WhiteoutNone {
			return fmt.Errorf("merge: unknown whiteout spec %d", s)
		}
		m.spec = s
		return nil
	}
}

// WithBeforeApply has fn see each layer's root and the merged root below
// it before the layer is applied (convert gives directories a tar only
// implied the attributes of the directory they land on).
func WithBeforeApply(fn func(base, layer *tree.Inode)) LayersOption {
	return func(m *Layers) error {
		if fn == nil {
			return errors.New("merge: nil before-apply function")
		}
		m.before = fn
		return nil
	}
}

// NewLayers returns an empty merge.
func NewLayers(opts ...LayersOption) (*Layers, error) {
	m := &Layers{spec: WhiteoutOCI}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// AddMerged starts the merge from t, an image merged before (a parent
// bootstrap): its tree is taken as it is, with no whiteouts to strip. It
// must come before any Add. t is consumed.
func (m *Layers) AddMerged(t *tree.Tree) error {
	if m.tree != nil {
		return errors.New("merge: a merged parent must come first")
	}
	if err := m.table.Add(t); err != nil {
		return err
	}
	m.tree = &tree.Tree{Root: t.Root, ChunkSize: t.ChunkSize, Flags: t.Flags, Prefetch: t.Prefetch}
	return nil
}

// Add merges layer t on top of what was added so far. Blob ids in t must
// be final (apply LayerBlob first). t is consumed.
func (m *Layers) Add(t *tree.Tree) error {
	if m.tree != nil && t.ChunkSize != m.tree.ChunkSize {
		return fmt.Errorf("%w: %#x over %#x", ErrChunkSize, t.ChunkSize, m.tree.ChunkSize)
	}
	if err := m.table.Add(t); err != nil {
		return err
	}
	if m.tree == nil {
		Strip(t.Root, m.spec)
		m.tree = &tree.Tree{Root: t.Root, ChunkSize: t.ChunkSize, Flags: t.Flags, Prefetch: t.Prefetch}
		return nil
	}
	if m.before != nil {
		m.before(m.tree.Root, t.Root)
	}
	Apply(m.tree.Root, t.Root, m.spec)
	m.tree.Flags |= t.Flags & layout.FlagExplicitUIDGID
	m.tree.Prefetch = append(m.tree.Prefetch, t.Prefetch...)
	return nil
}

// Tree returns the merged tree with the merged blob table, or an error
// when nothing was added.
func (m *Layers) Tree() (*tree.Tree, error) {
	if m.tree == nil {
		return nil, errors.New("merge: no layers")
	}
	m.tree.Blobs = m.table.Blobs
	return m.tree, nil
}
