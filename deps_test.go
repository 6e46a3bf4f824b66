package nydus

import (
	"cmp"
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gonydus/nydus"

// layers ranks the top-level directories; a package may import packages of
// a lower rank, or of its own top-level directory. It is the one source of
// the layering: doc.go and the README quote it (TestLayeringDocumented).
var layers = map[string]int{
	"internal":    -1, // imports none of ours: fuseuring, fuseabi, progress, test support
	"rafs":        0,
	"storage":     1,
	"overlay":     2,
	"daemon":      3,
	"graphdriver": 4,
	"convert":     4,
	"exporter":    5, // the BuildKit exporter pushes through convert.Publish
	"cmd":         6,
	"examples":    6,
}

// ranks returns the ranks of layers from the top, each with its
// directories in name order.
func ranks() (rs []int, dirs map[int][]string) {
	dirs = map[int][]string{}
	for d, r := range layers {
		dirs[r] = append(dirs[r], d)
	}
	for r := range dirs {
		slices.Sort(dirs[r])
	}
	rs = slices.SortedFunc(maps.Keys(dirs), func(a, b int) int { return cmp.Compare(b, a) })
	return rs, dirs
}

// layerChain is the README's one-line form of layers:
// "cmd, examples → exporter → ... → internal".
func layerChain() string {
	rs, dirs := ranks()
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strings.Join(dirs[r], ", ")
	}
	return strings.Join(parts, " → ")
}

// TestLayeringDocumented checks that doc.go's rank list and the README's
// layout section say what layers says: doc.go lists every rank with its
// directories, the README quotes layerChain and has a layout-table row for
// every top-level directory.
func TestLayeringDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]int{}
	row := regexp.MustCompile(`^//\t(-?\d+)\s+([a-z]+(?:, [a-z]+)*)  `)
	for line := range strings.SplitSeq(string(doc), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r, _ := strconv.Atoi(m[1])
		for d := range strings.SplitSeq(m[2], ", ") {
			if prev, dup := documented[d]; dup {
				t.Errorf("doc.go ranks %s twice (%d and %d)", d, prev, r)
			}
			documented[d] = r
		}
	}
	if !maps.Equal(documented, layers) {
		t.Errorf("doc.go's ranks %v differ from deps_test.go's layers %v: make doc.go quote layers", documented, layers)
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	if chain := "`" + layerChain() + "`"; !strings.Contains(section, chain) {
		t.Errorf("README.md's layout section does not quote the layers as %s", chain)
	}
	rowDirs := map[string]bool{}
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, p := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
			top, _, _ := strings.Cut(p[1], "/")
			rowDirs[top] = true
		}
	}
	for d := range layers {
		if !rowDirs[d] {
			t.Errorf("README.md's layout table has no row for %s/", d)
		}
	}
}

func topDir(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// TestDependencyDirection checks that imports between our packages point
// one way, down the ranks of layers.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		from := topDir(p.ImportPath)
		if from == "" {
			continue
		}
		rank, ok := layers[from]
		if !ok {
			t.Errorf("package %s lives in top-level directory %q, which has no layer: add it to layers", p.ImportPath, from)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := topDir(imp)
			checked++
			if to == from {
				continue
			}
			if r, ok := layers[to]; !ok || r >= rank {
				t.Errorf("%s (layer %s) imports %s (layer %s): dependencies must point downwards", p.ImportPath, from, imp, to)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no internal imports to check")
	}
}
