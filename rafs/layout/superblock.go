package layout

import "encoding/binary"

var le = binary.LittleEndian

// SuperBlock is the 128-byte EROFS superblock at offset 1024.
type SuperBlock struct {
	Magic           uint32
	Checksum        uint32
	FeatureCompat   uint32
	BlkSzBits       uint8
	ExtSlots        uint8
	RootNid         uint16
	Inos            uint64
	BuildTime       uint64
	BuildTimeNsec   uint32
	Blocks          uint32
	MetaBlkAddr     uint32
	XattrBlkAddr    uint32
	UUID            [16]byte
	VolumeName      [16]byte
	FeatureIncompat uint32
	U               uint16
	ExtraDevices    uint16
	DevtSlotOff     uint16
}

// Marshal encodes the superblock into b, which must hold SuperBlockSize bytes.
func (s *SuperBlock) Marshal(b []byte) {
	_ = b[SuperBlockSize-1]
	clear(b[:SuperBlockSize])
	le.PutUint32(b[0:], s.Magic)
	le.PutUint32(b[4:], s.Checksum)
	le.PutUint32(b[8:], s.FeatureCompat)
	b[12] = s.BlkSzBits
	b[13] = s.ExtSlots
	le.PutUint16(b[14:], s.RootNid)
	le.PutUint64(b[16:], s.Inos)
	le.PutUint64(b[24:], s.BuildTime)
	le.PutUint32(b[32:], s.BuildTimeNsec)
	le.PutUint32(b[36:], s.Blocks)
	le.PutUint32(b[40:], s.MetaBlkAddr)
	le.PutUint32(b[44:], s.XattrBlkAddr)
	copy(b[48:64], s.UUID[:])
	copy(b[64:80], s.VolumeName[:])
	le.PutUint32(b[80:], s.FeatureIncompat)
	le.PutUint16(b[84:], s.U)
	le.PutUint16(b[86:], s.ExtraDevices)
	le.PutUint16(b[88:], s.DevtSlotOff)
}

// Unmarshal decodes the superblock from b.
func (s *SuperBlock) Unmarshal(b []byte) error {
	if len(b) < SuperBlockSize {
		return ErrShortBuffer
	}
	s.Magic = le.Uint32(b[0:])
	s.Checksum = le.Uint32(b[4:])
	s.FeatureCompat = le.Uint32(b[8:])
	s.BlkSzBits = b[12]
	s.ExtSlots = b[13]
	s.RootNid = le.Uint16(b[14:])
	s.Inos = le.Uint64(b[16:])
	s.BuildTime = le.Uint64(b[24:])
	s.BuildTimeNsec = le.Uint32(b[32:])
	s.Blocks = le.Uint32(b[36:])
	s.MetaBlkAddr = le.Uint32(b[40:])
	s.XattrBlkAddr = le.Uint32(b[44:])
	copy(s.UUID[:], b[48:64])
	copy(s.VolumeName[:], b[64:80])
	s.FeatureIncompat = le.Uint32(b[80:])
	s.U = le.Uint16(b[84:])
	s.ExtraDevices = le.Uint16(b[86:])
	s.DevtSlotOff = le.Uint16(b[88:])
	return nil
}

// BlockSize returns the block size named by BlkSzBits.
func (s *SuperBlock) BlockSize() uint64 { return 1 << s.BlkSzBits }

// Validate applies the superblock checks nydusd applies.
func (s *SuperBlock) Validate() error {
	switch {
	case s.Magic != ErofsMagic:
		return errorf("bad EROFS magic %#x", s.Magic)
	case s.Checksum != 0:
		return errorf("superblock checksum %#x must be 0 for RAFS v6", s.Checksum)
	case s.FeatureCompat&FeatureCompatRafsV6 == 0:
		return errorf("feature_compat %#x lacks the RAFS v6 bit (not a RAFS image)", s.FeatureCompat)
	case s.BlkSzBits != BlockBits && s.BlkSzBits != TarfsBlockBits:
		return errorf("unsupported block size bits %d", s.BlkSzBits)
	case s.ExtSlots != 0:
		return errorf("sb_extslots %d must be 0", s.ExtSlots)
	case s.Inos == 0:
		return errorf("inode count is 0")
	case s.U != 0:
		return errorf("compression config %#x must be 0", s.U)
	case s.XattrBlkAddr != 0:
		return errorf("shared xattr area (xattr_blkaddr %d) is not supported", s.XattrBlkAddr)
	case s.DevtSlotOff != DeviceSlotOffset:
		return errorf("devt_slotoff %d must be %d", s.DevtSlotOff, DeviceSlotOffset)
	case s.FeatureIncompat != FeatureIncompatRafsV6:
		return errorf("feature_incompat %#x must be %#x", s.FeatureIncompat, FeatureIncompatRafsV6)
	}
	return nil
}
