package generate

import (
	"math"
)

// MaxStretchValues is how many sample values (RGBBands per pixel) a stretch
// keeps in memory to sort: 48 MiB. A zone's sample holds at most
// SampleShardsMax × SamplePixels pixels (960,000 values); a year's global
// stretch can hold far more, and its percentiles are then found exactly in
// two passes over the sample with bounded memory (see StretchFrom).
const MaxStretchValues = 12 << 20

// SampleReader appends to vals the sample values of sample shard k (see
// SampleShardsMax).
type SampleReader func(k int, vals []float32) ([]float32, error)

// StretchFrom computes the stretch of a sample of n shards, reading each
// with read. When the sample has at most maxValues values it is read once
// and sorted; otherwise its order statistics are found by radix selection:
// a first pass counts the values by the high 16 bits of an order-preserving
// key, a second counts the low 16 bits of the values in the buckets that
// hold the ranks the percentiles need. Both ways give exactly the same
// stretch.
func StretchFrom(n int, read SampleReader, maxValues int) (Stretch, error) {
	var kept []float32
	var buf []float32
	var hist [RGBBands][]uint64
	for b := range hist {
		hist[b] = make([]uint64, 1<<16)
	}
	total := 0 // pixels
	inMemory := true
	var err error
	for k := range n {
		if buf, err = read(k, buf[:0]); err != nil {
			return Stretch{}, err
		}
		for p := 0; p+RGBBands <= len(buf); p += RGBBands {
			for b := range RGBBands {
				hist[b][sortKey(buf[p+b])>>16]++
			}
		}
		total += len(buf) / RGBBands
		if inMemory && len(kept)+len(buf) <= maxValues {
			kept = append(kept, buf...)
		} else {
			inMemory, kept = false, nil
		}
	}
	if total == 0 {
		return DefaultStretch, nil
	}
	if inMemory {
		return StretchOf(kept), nil
	}

	// The ranks the two percentiles interpolate between.
	var ranks []int
	for _, q := range []float64{2, 98} {
		i, j := percentileRanks(total, q)
		ranks = append(ranks, i, j)
	}
	// Pass 1 located, per band and rank, the high bucket and the rank
	// within it.
	type target struct {
		high   uint32
		within uint64
		low    []uint64 // pass 2: counts of the low 16 bits in the bucket
		value  float32
	}
	var targets [RGBBands][]target
	for b := range RGBBands {
		for _, r := range ranks {
			cum := uint64(0)
			for h, c := range hist[b] {
				if uint64(r) < cum+c {
					targets[b] = append(targets[b], target{high: uint32(h), within: uint64(r) - cum, low: make([]uint64, 1<<16)})
					break
				}
				cum += c
			}
		}
	}
	for k := range n {
		if buf, err = read(k, buf[:0]); err != nil {
			return Stretch{}, err
		}
		for p := 0; p+RGBBands <= len(buf); p += RGBBands {
			for b := range RGBBands {
				key := sortKey(buf[p+b])
				for t := range targets[b] {
					if key>>16 == targets[b][t].high {
						targets[b][t].low[key&0xffff]++
					}
				}
			}
		}
	}
	var lo, hi [RGBBands]float32
	for b := range RGBBands {
		for t := range targets[b] {
			tg := &targets[b][t]
			cum := uint64(0)
			for l, c := range tg.low {
				if tg.within < cum+c {
					tg.value = fromSortKey(tg.high<<16 | uint32(l))
					break
				}
				cum += c
			}
		}
		value := map[int]float32{}
		for t, r := range ranks {
			value[r] = targets[b][t].value
		}
		at := func(rank int) float32 { return value[rank] }
		lo[b], hi[b] = Percentile(total, 2, at), Percentile(total, 98, at)
	}
	return makeStretch(lo, hi), nil
}

// sortKey maps a float32 to a uint32 with the same order (for non-NaN
// values; −0 sorts just below +0, which are equal anyway).
func sortKey(v float32) uint32 {
	u := math.Float32bits(v)
	if u&0x8000_0000 != 0 {
		return ^u
	}
	return u | 0x8000_0000
}

func fromSortKey(k uint32) float32 {
	if k&0x8000_0000 != 0 {
		return math.Float32frombits(k &^ 0x8000_0000)
	}
	return math.Float32frombits(^k)
}
