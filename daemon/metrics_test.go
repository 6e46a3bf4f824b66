package daemon_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// scrape fetches /metrics, checks it with promlint (and with promtool
// check metrics when promtool is installed) and parses it.
func scrape(t *testing.T, c *apiClient) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := c.do("GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed; checked with promlint only")
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns the value of the series of family name with the given
// label (name=value pairs); histograms give their sample count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, typ dto.MetricType, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	if f.GetType() != typ {
		t.Fatalf("%s is a %v, want %v", name, f.GetType(), typ)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch typ {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			if n := len(h.Bucket); n == 0 || h.Bucket[n-1].GetCumulativeCount() > h.GetSampleCount() {
				t.Fatalf("%s: buckets %v beyond count %d", name, h.Bucket, h.GetSampleCount())
			}
			return float64(h.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// TestPrometheusExposition scrapes a running daemon serving an image with
// one corrupt chunk: the exposition is lint-clean, has the Go and process
// collectors, and its counters and histograms move with reads and agree
// with the JSON endpoints.
func TestPrometheusExposition(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "m", 6)
	data, err := os.ReadFile(im.blobPath)
	testutil.Must(t, err)
	data[10] ^= 0xff // inside the first chunk of f00
	testutil.Must(t, os.WriteFile(im.blobPath, data, 0o644))
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), true)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{ID: "metrics"})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	api := daemon.NewAPI(d, nil, func() {})
	sock := filepath.Join(work, "api.sock")
	testutil.Must(t, api.Serve(sock))
	defer api.Close()
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	c := newClient(t, sock)
	mp := []string{"mountpoint", "/"}

	before := scrape(t, c)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "process_open_fds"} {
		if before[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if v := value(t, before, "nydusd_up", dto.MetricType_GAUGE); v != 1 {
		t.Errorf("nydusd_up %v", v)
	}
	if v := value(t, before, "nydusd_read_bytes_total", dto.MetricType_COUNTER, mp...); v != 0 {
		t.Errorf("read bytes before reading: %v", v)
	}

	var size int
	for f, want := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, f))
		if f == "f00" {
			if err == nil {
				t.Fatal("tampered f00 read without error")
			}
			continue
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", f, err)
		}
		size += len(want)
	}

	after := scrape(t, c)
	readBytes := value(t, after, "nydusd_read_bytes_total", dto.MetricType_COUNTER, mp...)
	hits := value(t, after, "nydusd_read_hits_total", dto.MetricType_COUNTER, mp...)
	errs := value(t, after, "nydusd_read_errors_total", dto.MetricType_COUNTER, mp...)
	if readBytes < float64(size) || hits == 0 || errs == 0 {
		t.Errorf("after reading %d bytes and one corrupt file: read bytes %v, hits %v, errors %v", size, readBytes, hits, errs)
	}
	if n := value(t, after, "nydusd_cumulative_read_block_bytes", dto.MetricType_HISTOGRAM, mp...); n != hits+errs {
		t.Errorf("read size histogram counts %v READs, counters %v", n, hits+errs)
	}
	if n := value(t, after, "nydusd_read_latency_seconds", dto.MetricType_HISTOGRAM, mp...); n != hits+errs {
		t.Errorf("read latency histogram counts %v READs, counters %v", n, hits+errs)
	}
	sum := after["nydusd_cumulative_read_block_bytes"].Metric[0].GetHistogram().GetSampleSum()
	if sum != readBytes {
		t.Errorf("read size histogram sum %v, read bytes %v", sum, readBytes)
	}
	for _, name := range []string{"nydusd_cache_requests_total", "nydusd_backend_reads_total", "nydusd_backend_read_bytes_total",
		"nydusd_cache_corrupt_fetched_chunks_total"} {
		if v := value(t, after, name, dto.MetricType_COUNTER, mp...); v == 0 {
			t.Errorf("%s is 0 after reads", name)
		}
	}
	for _, name := range []string{"nydusd_storage_read_duration_seconds", "nydusd_backend_read_duration_seconds"} {
		if value(t, after, name, dto.MetricType_HISTOGRAM, mp...) <= value(t, before, name, dto.MetricType_HISTOGRAM, mp...) {
			t.Errorf("%s did not move", name)
		}
	}
	if v := value(t, after, "nydusd_fuse_requests_total", dto.MetricType_COUNTER, "opcode", "read"); v < hits+errs {
		t.Errorf("fuse read requests %v < %v READs", v, hits+errs)
	}

	// The JSON endpoint reports the same quantities.
	_, body := c.do("GET", "/api/v1/metrics", nil)
	if !strings.Contains(string(body), `"data_read":`+strconv.FormatUint(uint64(readBytes), 10)) {
		t.Errorf("/api/v1/metrics disagrees with nydusd_read_bytes_total %v: %s", readBytes, body)
	}
}

// TestPrometheusLabelEscaping: a mountpoint with a quote, a backslash, a
// tab and a non-ASCII letter comes back intact through the text format
// (Go's %q writes the tab as \t, which the format does not know).
func TestPrometheusLabelEscaping(t *testing.T) {
	work := t.TempDir()
	im := buildImage(t, work, "e", 2)
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), true)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{ID: "escape"})
	const mpName = "/q\"u\\o\t→"
	testutil.Must(t, d.AddMount(mpName, im.boot, cfg))
	defer d.RemoveMount(mpName)
	api := daemon.NewAPI(d, nil, func() {})
	sock := filepath.Join(work, "api.sock")
	testutil.Must(t, api.Serve(sock))
	defer api.Close()
	fams := scrape(t, newClient(t, sock))
	value(t, fams, "nydusd_read_bytes_total", dto.MetricType_COUNTER, "mountpoint", mpName)
	if value(t, fams, "nydusd_up", dto.MetricType_GAUGE) != 0 {
		t.Error("nydusd_up is 1 before Start")
	}
}
