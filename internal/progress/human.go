package progress

import (
	"fmt"
	"time"
)

// Size formats n bytes with binary units: "512 B", "12.3 MiB".
func Size(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if f < unit && f > -unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EiB", f/unit)
}

// Rate formats n bytes over d as "8.1 MiB/s".
func Rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "- B/s"
	}
	return Size(int64(float64(n)/d.Seconds())) + "/s"
}
