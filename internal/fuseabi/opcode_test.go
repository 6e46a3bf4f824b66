package fuseabi

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestOpcodesMatchKernelHeader checks the table against the kernel's own
// enum fuse_opcode in the installed UAPI header (linux-libc-dev): every
// FUSE_ opcode the header names must have that number and name here.
// Opcodes newer than the header (STATX, COPY_FILE_RANGE_64 on older
// headers) are checked where the header has them.
func TestOpcodesMatchKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/fuse.h"
	src, err := os.ReadFile(header)
	if err != nil {
		testutil.Missing(t, "the kernel UAPI header %s (Debian linux-libc-dev): %v", header, err)
	}
	enum := regexp.MustCompile(`(?s)enum fuse_opcode \{(.*?)\};`).FindSubmatch(src)
	if enum == nil {
		t.Fatalf("%s has no enum fuse_opcode", header)
	}
	checked := 0
	for _, m := range regexp.MustCompile(`\bFUSE_([A-Z0-9_]+)\s*=\s*(\d+)`).FindAllSubmatch(enum[1], -1) {
		name := string(m[1])
		num, err := strconv.ParseUint(string(m[2]), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		if num >= NumOpcodes {
			continue // FUSE_INIT_BSWAP_RESERVED
		}
		if got := OpName(uint32(num)); got != name {
			t.Errorf("opcode %d: the header names it FUSE_%s, the table %q", num, name, got)
		}
		if op, ok := OpByName(name); !ok || op != uint32(num) {
			t.Errorf("OpByName(%q) = %d, %v; the header says %d", name, op, ok, num)
		}
		checked++
	}
	if checked < 40 {
		t.Fatalf("only %d opcodes found in %s: the pattern no longer matches the header", checked, header)
	}
}

func TestOpNameUnknown(t *testing.T) {
	for op, want := range map[uint32]string{7: "OP7", 63: "OP63", 4096: "OP4096"} {
		if got := OpName(op); got != want {
			t.Errorf("OpName(%d) = %q, want %q", op, got, want)
		}
	}
	if _, ok := OpByName(""); ok {
		t.Error(`OpByName("") found an opcode`)
	}
	if _, ok := OpByName("OP7"); ok {
		t.Error(`OpByName("OP7") found an opcode`)
	}
}
