// Command testsummary reads `go test -json` events on standard input and
// prints what a person needs from a whole-suite run: each package's
// ok/FAIL line, the output of every failed test, every skipped test with
// its reason (go test without -v hides skips), and a closing
// "N passed, N failed, N skipped" line. It exits 1 if any test or package
// failed, so `go test -json ./... | go run ./scripts/testsummary` fails
// as go test would.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one test2json record.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
	Elapsed    float64
}

// keepLines bounds the output kept per test: the last lines are the ones
// that say why it failed or skipped.
const keepLines = 300

type key struct{ pkg, test string }

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	buf := map[key][]string{}
	var passed, failed, skipped, pkgFailed int
	testsFailed := map[string]bool{} // packages with a failed test
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			fmt.Fprintf(out, "%s\n", line) // not an event: build output
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			pkgFailed++
			failed++ // a package that does not build counts as a failure
			fmt.Fprintf(out, "FAIL\t%s [build failed]\n", e.ImportPath)
		case "output":
			b := append(buf[k], e.Output)
			if len(b) > keepLines {
				b = b[len(b)-keepLines:]
			}
			buf[k] = b
		case "pass", "fail", "skip":
			lines := buf[k]
			delete(buf, k)
			if e.Test == "" { // the package
				switch e.Action {
				case "fail":
					pkgFailed++
					if !testsFailed[e.Package] {
						failed++ // failed with no failed test: a panic, a timeout
					}
					fmt.Fprintf(out, "%sFAIL\t%s\t%.1fs\n", strings.Join(lines, ""), e.Package, e.Elapsed)
				case "skip":
					fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
				default:
					fmt.Fprintf(out, "ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
				}
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				testsFailed[e.Package] = true
				fmt.Fprintf(out, "--- FAIL: %s (%s, %.2fs)\n%s", e.Test, e.Package, e.Elapsed, strings.Join(lines, ""))
			case "skip":
				skipped++
				fmt.Fprintf(out, "--- SKIP: %s (%s): %s\n", e.Test, e.Package, skipReason(lines))
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: reading go test -json: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 || pkgFailed > 0 {
		return 1
	}
	return 0
}

// skipReason is what a skipped test said: its output without the
// "=== RUN" and "--- SKIP" lines, on one line.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " | ")
}
