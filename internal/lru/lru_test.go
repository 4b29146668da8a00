package lru

import (
	"slices"
	"testing"
)

func keys(l *LRU[string, int]) []string {
	var out []string
	for k := range l.All() {
		out = append(out, k)
	}
	return out
}

func TestOrderAndSize(t *testing.T) {
	l := New[string, int]()
	l.Add("a", 1, 10)
	l.Add("b", 2, 20)
	l.Add("c", 3, 30)
	if got := keys(l); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("order %v", got)
	}
	if v, ok := l.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	if got := keys(l); !slices.Equal(got, []string{"a", "c", "b"}) {
		t.Fatalf("after Get(a): %v", got)
	}
	if v, ok := l.Peek("b"); !ok || v != 2 || keys(l)[2] != "b" {
		t.Fatal("Peek changed the order or missed")
	}
	l.Add("b", 22, 5) // replace: new size, most recent
	if l.Size() != 45 || l.Len() != 3 || keys(l)[0] != "b" {
		t.Fatalf("after replace: size %d len %d order %v", l.Size(), l.Len(), keys(l))
	}
	if k, v, ok := l.Oldest(); !ok || k != "c" || v != 3 {
		t.Fatalf("Oldest = %s %d %v", k, v, ok)
	}
	if v, ok := l.Remove("c"); !ok || v != 3 || l.Size() != 15 {
		t.Fatalf("Remove(c) = %d %v, size %d", v, ok, l.Size())
	}
	if _, ok := l.Remove("c"); ok {
		t.Fatal("removed twice")
	}
	if k, _, ok := l.RemoveOldest(); !ok || k != "a" || l.Size() != 5 {
		t.Fatalf("RemoveOldest = %s, size %d", k, l.Size())
	}
	l.Clear()
	if l.Len() != 0 || l.Size() != 0 {
		t.Fatal("Clear left entries")
	}
	if _, _, ok := l.RemoveOldest(); ok {
		t.Fatal("RemoveOldest of an empty LRU")
	}
}

func TestTrim(t *testing.T) {
	for _, tc := range []struct {
		name     string
		budget   int64
		keep     int
		refuse   string
		want     []string
		evictedN int
	}{
		{"to budget", 50, 0, "", []string{"d", "c"}, 2},
		{"keeps one", 0, 1, "", []string{"d"}, 3},
		{"keeps none", 0, 0, "", nil, 4},
		{"under budget", 100, 0, "", []string{"d", "c", "b", "a"}, 0},
		{"refused", 0, 0, "b", []string{"d", "c", "b"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New[string, int]()
			for i, k := range []string{"a", "b", "c", "d"} {
				l.Add(k, i, 20)
			}
			var evicted []string
			var can func(string, int) bool
			if tc.refuse != "" {
				can = func(k string, _ int) bool { return k != tc.refuse }
			}
			l.Trim(tc.budget, tc.keep, can, func(k string, _ int) { evicted = append(evicted, k) })
			if got := keys(l); !slices.Equal(got, tc.want) || len(evicted) != tc.evictedN {
				t.Errorf("left %v, evicted %v", got, evicted)
			}
			if l.Size() != int64(20*len(tc.want)) {
				t.Errorf("size %d", l.Size())
			}
		})
	}
}
