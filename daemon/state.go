package daemon

import (
	"encoding/json"
	"fmt"
)

// The state a daemon hands to its supervisor with the FUSE descriptor
// (sendfd) and a successor restores (takeover): all the kernel relies on
// that the descriptor does not carry. Its encoding is ours (JSON), opaque
// to the supervisor, behind a magic and a version: a successor refuses a
// state it does not know rather than serve a session it misreads.

// stateMagic marks a gonydus nydusd state; upstream's Rust nydusd sends
// a versionize blob, which starts otherwise.
const stateMagic = "gonydus-nydusd-state"

// StateVersion is the version of the state this nydusd writes and the
// newest it reads.
const StateVersion = 1

// sessionState is the state blob.
type sessionState struct {
	Magic   string `json:"magic"`
	Version int    `json:"version"`
	// DaemonID is the --id of the daemon that wrote it.
	DaemonID string `json:"daemon_id,omitempty"`
	// Mountpoint is where the FUSE session is mounted.
	Mountpoint string `json:"mountpoint"`
	// InitIn is the kernel's INIT request, InitOut the answer it got:
	// the kernel never sends INIT again on this connection.
	InitIn  []byte `json:"init_in"`
	InitOut []byte `json:"init_out"`
	// FailoverPolicy is the --failover-policy of the writer.
	FailoverPolicy string `json:"failover_policy"`
	Writable       bool   `json:"writable,omitempty"`
	Threads        int    `json:"threads,omitempty"`
	// NextIndex is where the search for a free inode index starts.
	NextIndex uint64 `json:"next_index"`
	// OverlayGen is the writer's generation in a writable overlay's
	// session (handover.go): its successor is the next.
	OverlayGen uint64       `json:"overlay_gen,omitempty"`
	Mounts     []mountState `json:"mounts"`
}

// mountState is one image of the session (the root image or a
// pseudo-mount).
type mountState struct {
	Mountpoint    string          `json:"mountpoint"`
	Bootstrap     string          `json:"bootstrap"`
	Config        json.RawMessage `json:"config"`
	PrefetchFiles []string        `json:"prefetch_files,omitempty"`
	// Index is the top byte of the image's inode numbers and node IDs.
	Index uint64 `json:"index"`
}

func (s *sessionState) encode() ([]byte, error) {
	s.Magic, s.Version = stateMagic, StateVersion
	return json.Marshal(s)
}

// decodeState parses a state blob, refusing one that is not ours or of
// a version this nydusd does not know.
func decodeState(b []byte) (*sessionState, error) {
	var head struct {
		Magic   string `json:"magic"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil || head.Magic != stateMagic {
		return nil, fmt.Errorf("%w: the supervisor's state (%d bytes) is not a gonydus nydusd state (upstream's Rust nydusd writes another format)", ErrInvalidInput, len(b))
	}
	if head.Version < 1 || head.Version > StateVersion {
		return nil, fmt.Errorf("%w: the supervisor's state has version %d; this nydusd reads versions 1 to %d (a newer nydusd wrote it: take over with that one)",
			ErrInvalidInput, head.Version, StateVersion)
	}
	var s sessionState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: state: %w", ErrInvalidInput, err)
	}
	if len(s.InitIn) < 56 || len(s.InitOut) < 40 || s.Mountpoint == "" {
		return nil, fmt.Errorf("%w: state lacks the session's INIT or mountpoint", ErrInvalidInput)
	}
	return &s, nil
}
