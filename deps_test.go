package nydus

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/gonydus/nydus"

// layers ranks the top-level directories; a package may import packages of
// a lower rank, or of its own top-level directory.
var layers = map[string]int{
	"internal": -1, // imports none of ours: test support (testutil, statcmp, ptytest), progress, fuseuring
	"rafs":     0,
	"storage":  1,

	"overlay":     2,
	"daemon":      3,
	"graphdriver": 4,
	"convert":     4,
	"exporter":    5, // the BuildKit exporter pushes through convert.Publish
	"cmd":         6,
	"examples":    6,
}

func topDir(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// TestDependencyDirection checks that imports between our packages point
// one way: cmd -> exporter -> integrations (graphdriver, convert) ->
// daemon/overlay -> storage -> rafs.
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
