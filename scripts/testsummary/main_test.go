package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: no nginx on PATH\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC","Elapsed":0.2}`,
		`{"Action":"fail","Package":"p","Elapsed":1.5}`,
		`{"Action":"pass","Package":"q","Elapsed":0.5}`,
		`{"Action":"fail","Package":"r","Elapsed":0.1}`,
		`{"ImportPath":"s","Action":"build-output","Output":"s.go:1: syntax error\n"}`,
		`{"ImportPath":"s","Action":"build-fail"}`,
	}, "\n")
	var out bytes.Buffer
	if rc := run(strings.NewReader(in), &out); rc != 1 {
		t.Errorf("exit %d, want 1 (a test failed)", rc)
	}
	for _, want := range []string{
		"--- SKIP: TestB (p): b_test.go:9: no nginx on PATH\n",
		"--- FAIL: TestC (p, 0.20s)\n    c_test.go:3: got 1, want 2\n",
		"FAIL\tp\t1.5s\n", "ok  \tq\t0.5s\n",
		"1 passed, 3 failed, 1 skipped\n", "s.go:1: syntax error\n", "FAIL\ts [build failed]\n", "FAIL\tr\t0.1s\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TestA") {
		t.Errorf("a passing test is shown:\n%s", out.String())
	}
	out.Reset()
	if rc := run(strings.NewReader(`{"Action":"pass","Package":"q","Test":"TestA"}`+"\n"+`{"Action":"pass","Package":"q"}`), &out); rc != 0 {
		t.Errorf("exit %d for a passing run", rc)
	}
}
