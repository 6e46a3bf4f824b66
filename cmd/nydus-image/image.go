package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/blob"
)

// loadedImage is a bootstrap read from a file, which may be a bootstrap or
// a data blob carrying an inline bootstrap.
type loadedImage struct {
	path  string
	boot  []byte
	img   *rafs.Image
	blobs map[string]io.ReaderAt // blob files known from the command line
	close []io.Closer
}

// Close closes what the image opened, last opened first (a chunk source
// before the backend it reads from).
func (l *loadedImage) Close() {
	for i := len(l.close) - 1; i >= 0; i-- {
		l.close[i].Close()
	}
}

// fileStem is the base name with every extension stripped.
func fileStem(p string) string {
	base := filepath.Base(p)
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	return base
}

func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// loadImage opens path: a bootstrap, or a blob with an inline bootstrap.
// Placeholder blob ids are resolved to the file's stem when that is a blob
// id, otherwise to the sha256 of the blob file.
func loadImage(path string) (*loadedImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &loadedImage{path: path, blobs: map[string]io.ReaderAt{}}
	var ownID string
	if blob.IsBootstrap(f, st.Size()) {
		l.boot, err = io.ReadAll(io.NewSectionReader(f, 0, st.Size()))
		f.Close()
		if err != nil {
			return nil, err
		}
		ownID = fileStem(path)
	} else {
		l.boot, err = blob.InlineBootstrap(f, st.Size())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s is neither a RAFS v6 bootstrap nor a blob with an inline bootstrap: %w", path, err)
		}
		ownID = fileStem(path)
		if !isHexID(ownID) {
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size())); err != nil {
				f.Close()
				return nil, err
			}
			ownID = hex.EncodeToString(h.Sum(nil))
		}
		l.blobs[ownID] = f
		l.close = append(l.close, f)
	}
	if isHexID(ownID) {
		if n, err := blob.ResolvePlaceholder(l.boot, ownID); err != nil {
			l.Close()
			return nil, err
		} else if n > 0 {
			slog.Debug("resolved placeholder blob id", "id", ownID, "file", path)
		}
	}
	l.img, err = rafs.Open(bytes.NewReader(l.boot), int64(len(l.boot)))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// chunkSource serves the image's blobs from --blob (a single file, matched
// to the image's only data blob or by content hash) and --blob-dir.
func (l *loadedImage) chunkSource(blobFile, blobDir string) (rafs.ChunkSource, error) {
	files, err := l.blobFiles(blobFile)
	if err != nil {
		return nil, err
	}
	src := rafs.NewLocalBlobs(blobDir, files)
	l.close = append(l.close, src)
	return l.withZran(src, files, blobDir), nil
}

// blobFiles maps blob ids to the blob files known from the command line:
// the file the image was loaded from (inline bootstrap) and --blob.
func (l *loadedImage) blobFiles(blobFile string) (map[string]io.ReaderAt, error) {
	files := map[string]io.ReaderAt{}
	for id, r := range l.blobs {
		files[id] = r
	}
	if blobFile == "" {
		return files, nil
	}
	f, err := os.Open(blobFile)
	if err != nil {
		return nil, err
	}
	l.close = append(l.close, f)
	id := fileStem(blobFile)
	if !isHexID(id) || !l.hasBlob(id) {
		if bl := l.img.Blobs(); len(bl) == 1 {
			id = bl[0].ID()
		} else {
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return nil, err
			}
			id = hex.EncodeToString(h.Sum(nil))
		}
	}
	files[id] = f
	return files, nil
}

// loadArg resolves the bootstrap given as the only argument or with
// --bootstrap, and loads it. The caller closes the image, which also
// closes chunk sources made from it.
func loadArg(args []string, flagVal string) (string, *loadedImage, error) {
	path, err := onePath(args, flagVal, "bootstrap")
	if err != nil {
		return "", nil, err
	}
	l, err := loadImage(path)
	return path, l, err
}

func (l *loadedImage) hasBlob(id string) bool {
	for _, b := range l.img.Blobs() {
		if b.ID() == id {
			return true
		}
	}
	return false
}

func hexDigest(s string) ([32]byte, error) {
	var d [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return d, fmt.Errorf("not a sha256 hex digest")
	}
	copy(d[:], b)
	return d, nil
}
