package zran

import "fmt"

// MaxContextOut is the largest output a context may cover: upstream
// nydusd refuses to inflate a context whose out_len exceeds its largest
// chunk size (16 MiB, RAFS_MAX_CHUNK_SIZE in storage/src/cache/mod.rs).
const MaxContextOut = 16 << 20

// MaxContextIn bounds the compressed bytes of one context: deflate never
// needs more than its output plus 5 bytes per 64 KiB stored block (and
// block headers), so twice MaxContextOut is generous.
const MaxContextIn = 2 * MaxContextOut

// maxContexts bounds a context table (upstream allows 2^24 contexts).
const maxContexts = 1 << 24

// Limits are the rules that space a generator's contexts. A chunk opens a
// new context when the current one has seen MaxCompressed/2 compressed
// bytes since its start, when its output plus a whole chunk would reach
// MaxUncompressed, or when the gap rule fires (the compressed distance
// since the start is more than twice the context's input and that input
// exceeds MinCompressed). Wider spacing means fewer 32 KiB dictionaries
// in the index and more bytes fetched and inflated per random read: a
// read fetches at most about MaxCompressed/2 plus its chunk's compressed
// bytes and inflates less than MaxUncompressed plus one deflate block.
type Limits struct {
	MinCompressed   int64
	MaxCompressed   int64
	MaxUncompressed int64
}

// UpstreamLimits are upstream nydus-image's rules for OCI-ref conversion
// (min/max compressed 512 KiB / 1 MiB, max uncompressed 2 MiB).
func UpstreamLimits() Limits {
	return Limits{MinCompressed: 512 << 10, MaxCompressed: 1 << 20, MaxUncompressed: 2 << 20}
}

// DefaultLimits space contexts about every 2 MiB of compressed input or
// 8 MiB of output, whichever comes first: the index is about half
// upstream's size and a random read inflates under 8 MiB plus a block.
func DefaultLimits() Limits {
	return Limits{MinCompressed: 2 << 20, MaxCompressed: 4 << 20, MaxUncompressed: 8 << 20}
}

// Validate checks l. MaxUncompressed is at most half of MaxContextOut so a
// context merged into its predecessor (see Generator) stays readable by
// upstream nydusd.
func (l Limits) Validate() error {
	switch {
	case l.MinCompressed < 64<<10 || l.MaxCompressed < 2*l.MinCompressed:
		return fmt.Errorf("zran: context limits: min compressed %d must be at least 64 KiB and at most half of max compressed %d", l.MinCompressed, l.MaxCompressed)
	case l.MaxCompressed > 256<<20:
		return fmt.Errorf("zran: context limits: max compressed %d above 256 MiB", l.MaxCompressed)
	case l.MaxUncompressed < 64<<10 || l.MaxUncompressed > MaxContextOut/2:
		return fmt.Errorf("zran: context limits: max uncompressed %d outside 64 KiB..%d", l.MaxUncompressed, MaxContextOut/2)
	}
	return nil
}
