package overlay_test

import (
	"log"
	"os"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/rafs"
)

// Serving a RAFS image writable, as nydusd does with an "overlay" config
// section and --writable.
func ExampleNew() {
	f, err := os.Open("image.boot")
	if err != nil {
		log.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	img, err := rafs.Open(f, st.Size())
	if err != nil {
		log.Fatal(err)
	}
	lower := overlay.NewRAFSLower(img, rafs.NewLocalBlobs("blobs", nil))
	ovl, err := overlay.New(lower, "/var/lib/nydus/upper", "/var/lib/nydus/work")
	if err != nil {
		log.Fatal(err)
	}
	defer ovl.Close()
	opts := overlay.MountOptions("nydus")
	opts.RootStableAttr = ovl.RootStableAttr()
	// Without --writable: opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	srv, err := gofs.Mount("/mnt", ovl.Root(), opts)
	if err != nil {
		log.Fatal(err)
	}
	srv.Wait()
}
