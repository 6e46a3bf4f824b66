package layout

import "strings"

// Xattr is one extended attribute with its full name.
type Xattr struct {
	Name  string
	Value []byte
}

// xattrPrefixes maps EROFS name indexes to prefixes. Indexes 2 and 3 name a
// whole attribute (the stored suffix is empty).
var xattrPrefixes = [...]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
}

// SplitXattrName returns the EROFS name index and suffix for a full name.
func SplitXattrName(name string) (index uint8, suffix string, err error) {
	switch name {
	case xattrPrefixes[2]:
		return 2, "", nil
	case xattrPrefixes[3]:
		return 3, "", nil
	}
	for _, i := range []uint8{1, 4, 6} {
		if p := xattrPrefixes[i]; strings.HasPrefix(name, p) && len(name) > len(p) {
			return i, name[len(p):], nil
		}
	}
	return 0, "", errorf("unsupported xattr name %q (want user., trusted., security. or a POSIX ACL)", name)
}

func joinXattrName(index uint8, suffix []byte) (string, error) {
	if int(index) >= len(xattrPrefixes) || xattrPrefixes[index] == "" {
		return "", errorf("unknown xattr name index %d", index)
	}
	return xattrPrefixes[index] + string(suffix), nil
}

// EncodeXattrs returns the inline xattr area for attrs (header plus
// entries, 4-byte aligned) and the matching i_xattr_icount. Empty attrs
// give a nil area and count 0.
func EncodeXattrs(attrs []Xattr) ([]byte, uint16, error) {
	if len(attrs) == 0 {
		return nil, 0, nil
	}
	buf := make([]byte, XattrIbodyHeaderSize, 64)
	for _, a := range attrs {
		idx, suffix, err := SplitXattrName(a.Name)
		if err != nil {
			return nil, 0, err
		}
		if len(suffix) > 255 || len(a.Value) > 0xffff {
			return nil, 0, errorf("xattr %q too large", a.Name)
		}
		var h [XattrEntrySize]byte
		h[0] = uint8(len(suffix))
		h[1] = idx
		le.PutUint16(h[2:], uint16(len(a.Value)))
		buf = append(buf, h[:]...)
		buf = append(buf, suffix...)
		buf = append(buf, a.Value...)
		for len(buf)%4 != 0 {
			buf = append(buf, 0)
		}
	}
	icount := (len(buf)-XattrIbodyHeaderSize)/4 + 1
	if icount > 0xffff {
		return nil, 0, errorf("xattrs need %d slots (max 65535)", icount)
	}
	return buf, uint16(icount), nil
}

// DecodeXattrs parses an inline xattr area of an inode.
func DecodeXattrs(area []byte) ([]Xattr, error) {
	if len(area) == 0 {
		return nil, nil
	}
	if len(area) < XattrIbodyHeaderSize {
		return nil, errorf("xattr area of %d bytes is shorter than its header", len(area))
	}
	if shared := area[4]; shared != 0 {
		return nil, errorf("shared xattrs (%d) are not supported", shared)
	}
	var out []Xattr
	p := area[XattrIbodyHeaderSize:]
	for len(p) >= XattrEntrySize {
		nameLen, idx, valLen := int(p[0]), p[1], int(le.Uint16(p[2:]))
		if nameLen == 0 && idx == 0 && valLen == 0 {
			break // padding
		}
		total := XattrEntrySize + nameLen + valLen
		if total > len(p) {
			return nil, errorf("xattr entry of %d bytes overruns the area", total)
		}
		name, err := joinXattrName(idx, p[XattrEntrySize:XattrEntrySize+nameLen])
		if err != nil {
			return nil, err
		}
		val := append([]byte(nil), p[XattrEntrySize+nameLen:total]...)
		out = append(out, Xattr{Name: name, Value: val})
		total = (total + 3) &^ 3
		if total > len(p) {
			total = len(p)
		}
		p = p[total:]
	}
	return out, nil
}
