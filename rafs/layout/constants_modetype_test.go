package layout

import "testing"

func TestModeOfFileTypeRoundTrip(t *testing.T) {
	for _, m := range []uint32{ModeReg, ModeDir, ModeChr, ModeBlk, ModeFifo, ModeSock, ModeSymlink} {
		if got := ModeOfFileType(FileTypeOfMode(m)); got != m {
			t.Errorf("mode %o -> type %d -> %o", m, FileTypeOfMode(m), got)
		}
	}
	if ModeOfFileType(FileTypeUnknown) != ModeReg {
		t.Error("unknown type is not a regular file")
	}
}
