package layout

// DeviceSlot is one 128-byte EROFS device-table slot; slot i describes data
// blob i, EROFS device id i+1.
type DeviceSlot struct {
	Tag           [64]byte
	Blocks        uint32
	MappedBlkAddr uint32
}

// Marshal encodes the slot into b (DeviceSlotSize bytes).
func (d *DeviceSlot) Marshal(b []byte) {
	_ = b[DeviceSlotSize-1]
	clear(b[:DeviceSlotSize])
	copy(b[0:64], d.Tag[:])
	le.PutUint32(b[64:], d.Blocks)
	le.PutUint32(b[68:], d.MappedBlkAddr)
}

// Unmarshal decodes the slot from b.
func (d *DeviceSlot) Unmarshal(b []byte) error {
	if len(b) < DeviceSlotSize {
		return ErrShortBuffer
	}
	copy(d.Tag[:], b[0:64])
	d.Blocks = le.Uint32(b[64:])
	d.MappedBlkAddr = le.Uint32(b[68:])
	return nil
}

// Validate checks the tag is a 64-character blob id and blocks is non-zero.
func (d *DeviceSlot) Validate() error {
	if !isBlobID(d.Tag[:]) {
		return errorf("device tag %q is not a 64-character blob id", trimNUL(d.Tag[:]))
	}
	if d.Blocks == 0 {
		return errorf("device %q has zero blocks", trimNUL(d.Tag[:]))
	}
	return nil
}

// SetTag stores id (at most 64 bytes) as the tag.
func (d *DeviceSlot) SetTag(id string) { d.Tag = [64]byte{}; copy(d.Tag[:], id) }

func isBlobID(b []byte) bool {
	for _, c := range b {
		if c == 0 || c >= 0x80 {
			return false
		}
	}
	return len(b) == 64
}

func trimNUL(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
