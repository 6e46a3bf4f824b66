// Command demoregistry is the registry side of `make demo`: it serves a
// registry on loopback (go-containerregistry's, in process, or Debian's
// docker-registry behind it when given) and counts the blob bytes it
// serves; and it pushes a directory as an ordinary one-layer image, pulls
// an image's flattened file system, and fetches a nydus image's
// bootstrap, as the demo's steps need. It is not installed.
package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demoregistry serve|push|pull|bootstrap|size|stats [options]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{"serve": serve, "push": push, "pull": pull, "bootstrap": bootstrap, "size": size, "stats": stats}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "demoregistry: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "demoregistry %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// counter counts the bytes of blob responses.
type counter struct {
	bytes, requests atomic.Int64
}

type countingWriter struct {
	http.ResponseWriter
	c *counter
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.c.bytes.Add(int64(n))
	return n, err
}

func (c *counter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/demo/stats":
			fmt.Fprintf(w, "%d %d\n", c.bytes.Load(), c.requests.Load())
			return
		case "/demo/reset":
			c.bytes.Store(0)
			c.requests.Store(0)
			return
		}
		if r.Method == http.MethodGet && isBlob(r.URL.Path) {
			c.requests.Add(1)
			w = countingWriter{w, c}
		}
		next.ServeHTTP(w, r)
	})
}

func isBlob(p string) bool {
	d, _ := filepath.Split(p)
	return filepath.Base(d) == "blobs"
}

// serve serves a registry on 127.0.0.1 and writes its host:port to
// -addr-file once it answers; it ends on SIGTERM or SIGINT.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addrFile := fs.String("addr-file", "", "write host:port here once serving")
	debian := fs.String("debian", "", "Debian's docker-registry binary to run behind the counter (default: go-containerregistry's, in process)")
	data := fs.String("data", "", "storage directory of -debian")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addrFile == "" {
		return errors.New("-addr-file is required")
	}
	backend := http.Handler(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	if *debian != "" {
		h, stop, err := startDebian(*debian, *data)
		if err != nil {
			return err
		}
		defer stop()
		backend = h
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c := &counter{}
	srv := &http.Server{Handler: c.wrap(backend), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	if err := os.WriteFile(*addrFile, []byte(l.Addr().String()), 0o644); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return srv.Close()
}

// startDebian runs docker-registry on a free loopback port and returns a
// proxy to it.
func startDebian(bin, data string) (http.Handler, func(), error) {
	if data == "" {
		return nil, nil, errors.New("-debian needs -data")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(data, "config.yml")
	doc := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(data, "data"), addr)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	logf, err := os.Create(filepath.Join(data, "registry.log"))
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() }
	u := &url.URL{Scheme: "http", Host: addr}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(u.String() + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("docker-registry did not answer on %s within 15 s (see %s)", addr, logf.Name())
		}
	}
	return httputil.NewSingleHostReverseProxy(u), stop, nil
}

func ref(s string) (name.Reference, error) { return name.ParseReference(s, name.Insecure) }

// parseImage parses a subcommand's arguments and fetches the image its
// -ref (from) names.
func parseImage(fs *flag.FlagSet, args []string, from *string) (v1.Image, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	r, err := ref(*from)
	if err != nil {
		return nil, err
	}
	return remote.Image(r)
}

// push pushes -dir as a one-layer image (gzip, the tree under -prefix).
func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to put in the layer")
	prefix := fs.String("prefix", "", "path of -dir inside the image")
	to := fs.String("ref", "", "image reference")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := ref(*to)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "demo-layer-*.tar.gz")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	files, raw, err := writeLayer(tmp, *dir, *prefix)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(tmp.Name())
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Env = []string{"PATH=/" + *prefix + "/bin:/usr/bin:/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := remote.Write(r, img); err != nil {
		return err
	}
	st, _ := tmp.Stat()
	fmt.Printf("%d files, %d bytes, layer %d bytes gzip\n", files, raw, st.Size())
	return nil
}

// writeLayer writes the gzip tar of dir (under prefix) to w.
func writeLayer(w io.Writer, dir, prefix string) (files, raw int64, err error) {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return 0, 0, err
	}
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		if name == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = name, 0, 0, "", ""
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		files++
		raw += n
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, 0, err
	}
	return files, raw, zw.Close()
}

// pull writes the image's flattened file system as a tar to stdout.
func pull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	from := fs.String("ref", "", "image reference")
	img, err := parseImage(fs, args, from)
	if err != nil {
		return err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	_, err = io.Copy(os.Stdout, rc)
	return err
}

// bootstrapAnnotation marks a nydus image's bootstrap layer.
const bootstrapAnnotation = "containerd.io/snapshot/nydus-bootstrap"

// bootstrap writes a nydus image's bootstrap (image/image.boot of its
// bootstrap layer) to -o, as nydus-snapshotter fetches it before it
// starts nydusd.
func bootstrap(args []string) error {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	from := fs.String("ref", "", "nydus image reference")
	out := fs.String("o", "", "bootstrap file to write")
	img, err := parseImage(fs, args, from)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	for _, l := range m.Layers {
		if l.Annotations[bootstrapAnnotation] != "true" {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return err
		}
		rc, err := layer.Uncompressed()
		if err != nil {
			return err
		}
		defer rc.Close() //nolint:revive // the loop ends at the first bootstrap layer (every path below returns)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				return fmt.Errorf("no image/image.boot in the bootstrap layer: %w", err)
			}
			if h.Name == "image/image.boot" {
				f, err := os.Create(*out)
				if err != nil {
					return err
				}
				if _, err := io.Copy(f, tr); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			}
		}
	}
	return fmt.Errorf("%s has no layer annotated %s", *from, bootstrapAnnotation)
}

// size prints the bytes of an image's layers as the registry stores them.
func size(args []string) error {
	fs := flag.NewFlagSet("size", flag.ContinueOnError)
	from := fs.String("ref", "", "image reference")
	img, err := parseImage(fs, args, from)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	fmt.Println(n)
	return nil
}

// stats prints the blob bytes and requests served since the last reset
// (with -reset it resets them).
func stats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	addr := fs.String("addr", "", "the registry's host:port")
	reset := fs.Bool("reset", false, "reset the counters")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := http.Client{Timeout: 10 * time.Second}
	path := "/demo/stats"
	if *reset {
		path = "/demo/reset"
	}
	resp, err := c.Get("http://" + *addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
