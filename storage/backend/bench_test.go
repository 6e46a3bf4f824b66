package backend

import (
	"context"
	"fmt"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
)

// BenchmarkRegistryRangeRead reads ranges of an 8 MiB blob over loopback
// from each registry.
func BenchmarkRegistryRangeRead(b *testing.B) {
	data := randomData(8 << 20)
	for _, name := range []string{"inprocess", "debian"} {
		for _, size := range []int{64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(b *testing.B) {
				var reg *testregistry.Registry
				if name == "debian" {
					reg = testregistry.StartDebian(b)
				} else {
					reg = &testregistry.Start(b).Registry
				}
				id := reg.Push(b, "app", data)
				be, err := New("registry", []byte(fmt.Sprintf(`{"host":%q,"repo":"app","scheme":"http"}`, reg.Host)), WithEnv(noEnv))
				if err != nil {
					b.Fatal(err)
				}
				defer be.Close()
				blob, _ := be.Open(context.Background(), id)
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					off := int64(i*size) % int64(len(data)-size)
					if _, err := blob.ReadAt(context.Background(), buf, off); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
