package cache

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := NewHeader()
	h.AllReady = MagicAllReady
	buf := make([]byte, HeaderSize)
	h.Marshal(buf)
	want := []byte{0x50, 0x41, 0x4d, 0x42, 1, 0, 0, 0, 0x50, 0x41, 0x4d, 0x43, 0x50, 0x41, 0x4d, 0x4d}
	if !bytes.Equal(buf[:16], want) {
		t.Fatalf("header bytes % x, want % x", buf[:16], want)
	}
	got, err := ParseHeader(buf)
	if err != nil || got != h || !got.Complete() {
		t.Fatalf("ParseHeader = %+v, %v", got, err)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := make([]byte, HeaderSize)
	h := NewHeader()
	h.Marshal(good)
	for name, mutate := range map[string]func([]byte) []byte{
		"short":       func(b []byte) []byte { return b[:100] },
		"magic":       func(b []byte) []byte { b[0] ^= 1; return b },
		"magic2":      func(b []byte) []byte { b[8] ^= 1; return b },
		"zero header": func(b []byte) []byte { return make([]byte, HeaderSize) },
	} {
		b := mutate(bytes.Clone(good))
		if _, err := ParseHeader(b); !errors.Is(err, ErrInvalidChunkMap) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// Version 0 maps carry no second magic and are accepted, never complete.
	v0 := bytes.Clone(good)
	v0[4], v0[8] = 0, 0
	if h, err := ParseHeader(v0); err != nil || h.Complete() {
		t.Fatalf("version 0: %+v %v", h, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	good := make([]byte, HeaderSize)
	h := NewHeader()
	h.Marshal(good)
	f.Add(good)
	h.AllReady = MagicAllReady
	complete := make([]byte, HeaderSize)
	h.Marshal(complete)
	f.Add(complete)
	f.Add(good[:16])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidChunkMap) {
				t.Fatalf("error %v does not wrap ErrInvalidChunkMap", err)
			}
			return
		}
		// A header we accept re-encodes to the same first 16 bytes.
		out := make([]byte, HeaderSize)
		h.Marshal(out)
		if !bytes.Equal(out[:16], b[:16]) {
			t.Fatalf("re-encoded % x from % x", out[:16], b[:16])
		}
	})
}
