package generate

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestStretchTwoPass checks that the bounded-memory radix selection gives
// exactly the stretch of sorting everything, on samples with ties,
// negative zeros and values spread over many magnitudes.
func TestStretchTwoPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		shards int
		per    int
		gen    func() float32
	}{
		{"wide", 7, 3001, func() float32 { return float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4))) }},
		{"ties", 5, 2000, func() float32 { return float32(rng.IntN(7)-3) * 0.25 }},
		{"zeros", 3, 1000, func() float32 { return float32(math.Copysign(0, float64(rng.IntN(2)*2-1))) }},
		{"one", 1, 1, func() float32 { return 3.5 }},
		{"two", 1, 2, func() float32 { return float32(rng.Float64()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sample := make([][]float32, tc.shards)
			var all []float32
			for k := range sample {
				for range tc.per * RGBBands {
					sample[k] = append(sample[k], tc.gen())
				}
				all = append(all, sample[k]...)
			}
			read := func(k int, vals []float32) ([]float32, error) { return append(vals, sample[k]...), nil }
			want := StretchOf(append([]float32(nil), all...))
			inMem, err := StretchFrom(tc.shards, read, len(all))
			if err != nil {
				t.Fatal(err)
			}
			twoPass, err := StretchFrom(tc.shards, read, 1)
			if err != nil {
				t.Fatal(err)
			}
			if inMem != want || twoPass != want {
				t.Errorf("sorted %+v, in memory %+v, two passes %+v", want, inMem, twoPass)
			}
		})
	}
}

// TestPercentileMatchesNumPy pins values numpy.percentile gives for
// float32 arrays (NumPy 2.x: np.percentile(np.array(v, np.float32), q)).
func TestPercentileMatchesNumPy(t *testing.T) {
	sorted := []float32{-1.5, 0.1, 0.2, 0.7, 3}
	at := func(r int) float32 { return sorted[r] }
	for _, tc := range []struct {
		q    float64
		want float32
	}{
		{2, -1.371999979019165},  // g = 0.08
		{98, 2.8159999847412109}, // g = 0.92: b − (b−a)(1−g)
		{50, 0.2},
		{0, -1.5},
		{100, 3},
	} {
		if got := Percentile(len(sorted), tc.q, at); got != tc.want {
			t.Errorf("p%v = %.17g, want %.17g", tc.q, got, tc.want)
		}
	}
}

// TestStretchByte checks spec §4's channel formula at its edges.
func TestStretchByte(t *testing.T) {
	for _, tc := range []struct {
		x, lo, hi float32
		want      uint8
	}{
		{-5, 0, 1, 0}, {0, 0, 1, 0}, {1, 0, 1, 255}, {7, 0, 1, 255},
		{0.5, 0, 1, 127}, // 127.5 truncated
		{float32(math.NaN()), 0, 1, 0},
		{float32(math.Inf(1)), 0, 1, 255},
	} {
		if got := StretchByte(tc.x, tc.lo, tc.hi); got != tc.want {
			t.Errorf("StretchByte(%v, %v, %v) = %d, want %d", tc.x, tc.lo, tc.hi, got, tc.want)
		}
	}
	if StretchOf(nil) != DefaultStretch {
		t.Error("no sample: want the [0, 1] stretch")
	}
	if st := StretchOf([]float32{2, 2, 2, 2, 2, 2}); st.Lo[0] != 2 || st.Hi[0] != 3 {
		t.Errorf("constant sample: stretch %+v, want [2, 3]", st)
	}
}
