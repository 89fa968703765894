package media

import "time"

// The sink's latency histogram (types.h): 1 µs buckets below 1 ms, 100 µs
// buckets below 100 ms, 10 ms buckets below 10 s, one overflow bucket.
const (
	histFine    = 1000
	histMid     = 990
	histCoarse  = 990
	histBuckets = histFine + histMid + histCoarse + 1
)

// bucketUpper is the upper edge of bucket i (the overflow bucket: 10 s).
func bucketUpper(i int) time.Duration {
	switch {
	case i < histFine:
		return time.Duration(i+1) * time.Microsecond
	case i < histFine+histMid:
		return time.Millisecond + time.Duration(i-histFine+1)*100*time.Microsecond
	case i < histFine+histMid+histCoarse:
		return 100*time.Millisecond + time.Duration(i-histFine-histMid+1)*10*time.Millisecond
	}
	return 10 * time.Second
}

// percentile returns the upper edge of the bucket holding the q-quantile
// (0 < q <= 1) of h, and false for an empty histogram. Reporting the upper
// edge errs on the slow side by at most one bucket.
func percentile(h []uint64, q float64) (time.Duration, bool) {
	var total uint64
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return 0, false
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var acc uint64
	for i, v := range h {
		acc += v
		if acc >= rank {
			return bucketUpper(i), true
		}
	}
	return bucketUpper(len(h) - 1), true
}
