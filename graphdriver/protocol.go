package graphdriver

// The JSON bodies of Docker's graphdriver plugin protocol (dockerd's
// daemon/graphdriver/proxy.go). Field names are the wire names.

// IDMap is one range of a user-namespace mapping; the JSON keys are
// docker's idtools tags.
type IDMap struct {
	ContainerID int `json:"container_id"`
	HostID      int `json:"host_id"`
	Size        int `json:"size"`
}

type initRequest struct {
	Home    string
	Opts    []string
	UIDMaps []IDMap `json:"UIDMaps"`
	GIDMaps []IDMap `json:"GIDMaps"`
}

type createRequest struct {
	ID         string
	Parent     string
	MountLabel string
	StorageOpt map[string]string
}

type idRequest struct {
	ID         string
	MountLabel string
}

type diffRequest struct {
	ID     string
	Parent string
}

type errResponse struct {
	Err string
}

type getResponse struct {
	Dir string
	Err string
}

type existsResponse struct {
	Exists bool
}

type statusResponse struct {
	Status [][2]string
}

type metadataResponse struct {
	Metadata map[string]string
	Err      string
}

// Change is one entry of a Changes answer. Kind is docker's archive
// ChangeType: 0 modified, 1 added, 2 deleted.
type Change struct {
	Path string
	Kind int
}

const (
	ChangeModify = 0
	ChangeAdd    = 1
	ChangeDelete = 2
)

type changesResponse struct {
	Changes []Change
	Err     string
}

type sizeResponse struct {
	Size int64
	Err  string
}

// Capabilities is what the driver tells dockerd about itself.
type Capabilities struct {
	// ReproducesExactDiffs is false: dockerd keeps tar-split data of each
	// layer and the driver's Diff need not reproduce the original bytes.
	ReproducesExactDiffs bool
}

type capabilitiesResponse struct {
	Capabilities Capabilities
}
