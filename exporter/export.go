package exporter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/gonydus/nydus/convert"
)

// Layer is one layer of a build result: its diff id, the size of its
// uncompressed tar (for progress; 0 if unknown) and how to read it.
type Layer struct {
	DiffID digest.Digest
	Size   int64
	Open   func(context.Context) (io.ReadCloser, error)
}

// Progress shows named steps in the client's progress display.
type Progress interface {
	// Start begins a step of total bytes (0: not counted).
	Start(name string, total int64) Step
}

// Step is one running step.
type Step interface {
	// Advance records n more bytes done.
	Advance(n int64)
	// Done ends the step and returns err; a failed step is left
	// unfinished, the build's error says why.
	Done(err error) error
}

// Request is one export.
type Request struct {
	Layers []Layer
	// Config is the image config JSON.
	Config  []byte
	Options *Options
	// Remote says how to reach the registry (Insecure is or-ed with
	// Options.Insecure).
	Remote convert.Remote
	// Progress, when set, shows the steps to the client.
	Progress Progress
	Log      *slog.Logger
}

// Result is what Export did.
type Result struct {
	// Converted and Cached count the layers converted now and found in
	// the cache.
	Converted, Cached int
	// Pushed are the pushed images, one per name (none without push).
	Pushed []*convert.Result
}

// Response is the exporter response BuildKit hands to the client (buildx
// --metadata-file writes it).
func (r *Result) Response() map[string]string {
	m := map[string]string{
		"nydus.layers.converted": strconv.Itoa(r.Converted),
		"nydus.layers.cached":    strconv.Itoa(r.Cached),
	}
	if len(r.Pushed) > 0 {
		var names []string
		for _, p := range r.Pushed {
			names = append(names, p.Ref)
		}
		m["image.name"] = strings.Join(names, ",")
		m["containerimage.digest"] = r.Pushed[0].Manifest.Digest.String()
	}
	return m
}

// Export converts every layer (through the cache) and, with push, pushes
// the Nydus image to every name.
func Export(ctx context.Context, c *Cache, req *Request) (*Result, error) {
	o := req.Options
	log := req.Log
	if log == nil {
		log = slog.Default()
	}
	pr := req.Progress
	if pr == nil {
		pr = noProgress{}
	}
	layers := make([]*ConvertedLayer, len(req.Layers))
	var converted, cached atomic.Int32
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i, l := range req.Layers {
		g.Go(func() error {
			// The conversion step shows only when the cache misses and
			// the layer is read.
			var st Step = noProgress{}
			open := func(ctx context.Context) (io.ReadCloser, error) {
				st = pr.Start(fmt.Sprintf("converting layer %d/%d %s to nydus", i+1, len(req.Layers), short(l.DiffID)), l.Size)
				return l.Open(ctx)
			}
			cl, err := c.Convert(gctx, l.DiffID, open, o, func(n int64) { st.Advance(n) })
			if err != nil {
				return st.Done(fmt.Errorf("layer %d: %w", i, err))
			}
			if cl.Cached {
				cached.Add(1)
				pr.Start(fmt.Sprintf("layer %d/%d %s: cached nydus blob %s", i+1, len(req.Layers), short(l.DiffID), short(cl.Digest)), 0).Done(nil)
			} else {
				converted.Add(1)
			}
			layers[i] = cl
			return st.Done(nil)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res := &Result{Converted: int(converted.Load()), Cached: int(cached.Load())}
	log.Info("layers ready", "converted", res.Converted, "cached", res.Cached, "push", o.Push, "names", o.Names)
	if !o.Push {
		return res, nil
	}
	img := &convert.PublishImage{Config: req.Config}
	for _, l := range layers {
		t, err := l.Tree()
		if err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, convert.ConvertedLayer{Digest: l.Digest, Size: l.Size, Path: l.Blob, Tree: t})
	}
	remote := req.Remote
	remote.Insecure = remote.Insecure || o.Insecure
	st := pr.Start(fmt.Sprintf("pushing nydus image to %s", strings.Join(o.Names, ", ")), 0)
	pushed, err := convert.Publish(ctx, o.Names, img,
		convert.WithLayout(o.Layout), convert.WithOCI(o.OCI), convert.WithPrefetch(o.Prefetch),
		convert.WithTarget(remote), convert.WithLogger(log))
	if err := st.Done(err); err != nil {
		return nil, err
	}
	res.Pushed = pushed
	return res, nil
}

// noProgress shows nothing.
type noProgress struct{}

func (noProgress) Start(string, int64) Step { return noProgress{} }
func (noProgress) Advance(int64)            {}
func (noProgress) Done(err error) error     { return err }

// short abbreviates a digest for progress lines.
func short(d digest.Digest) string {
	if e := d.Encoded(); len(e) > 12 {
		return string(d.Algorithm()) + ":" + e[:12]
	}
	return d.String()
}
