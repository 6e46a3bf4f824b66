package convert

import (
	"bufio"
	"io"
)

// peekReader sniffs the first bytes of a stream without consuming them.
type peekReader struct{ *bufio.Reader }

func newPeekReader(r io.Reader) peekReader { return peekReader{bufio.NewReader(r)} }

func (p peekReader) isGzip() bool {
	b, err := p.Peek(2)
	return err == nil && b[0] == 0x1f && b[1] == 0x8b
}
