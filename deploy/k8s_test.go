package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tesserafs/tesserafs/internal/testservers"
	"github.com/tesserafs/tesserafs/internal/testtiles"
	"github.com/tesserafs/tesserafs/materializer"
)

// k8sObject is the part of a manifest the test reads.
type k8sObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Spec       *jobSpec          `json:"spec"`
}

type jobSpec struct {
	CompletionMode       string `json:"completionMode"`
	Completions          *int   `json:"completions"`
	Parallelism          *int   `json:"parallelism"`
	BackoffLimitPerIndex *int   `json:"backoffLimitPerIndex"`
	PodFailurePolicy     *struct {
		Rules []struct {
			Action      string `json:"action"`
			OnExitCodes *struct {
				ContainerName string `json:"containerName"`
				Operator      string `json:"operator"`
				Values        []int  `json:"values"`
			} `json:"onExitCodes"`
		} `json:"rules"`
	} `json:"podFailurePolicy"`
	Template struct {
		Spec struct {
			RestartPolicy string      `json:"restartPolicy"`
			Containers    []container `json:"containers"`
			Volumes       []struct {
				Name string `json:"name"`
			} `json:"volumes"`
		} `json:"spec"`
	} `json:"template"`
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	VolumeMounts []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
	} `json:"volumeMounts"`
}

// manifests parses every YAML document in dir, by file name.
func manifests(t *testing.T, dir string) map[string][]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	all := map[string][]k8sObject{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var o k8sObject
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s document %d: %v", filepath.Base(f), i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s document %d: no apiVersion, kind or metadata.name", filepath.Base(f), i)
			}
			all[filepath.Base(f)] = append(all[filepath.Base(f)], o)
		}
	}
	return all
}

// expand does what the kubelet does to a container's command and args:
// $(VAR) becomes VAR's value when VAR is in the container's environment,
// $$ is a literal $, anything else is left as it is.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				if v, ok := env[s[i+2:i+end]]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "x", "B": ""}
	for _, tc := range []struct{ in, want string }{
		{"$(A)", "x"}, {"--a=$(A)/$(B)", "--a=x/"}, {"$$(A)", "$(A)"}, {"$(C)", "$(C)"},
		{"$(A", "$(A"}, {"$", "$"}, {"a$b", "a$b"}, {"$$$(A)", "$x"},
	} {
		if got := expand(tc.in, env); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// runPhases reads run.sh's PHASES=(...): the order the Jobs are applied in.
func runPhases(t *testing.T, runSh string) []string {
	t.Helper()
	b, err := os.ReadFile(runSh)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PHASES=\(([^)]*)\)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no PHASES=(...) line", runSh)
	}
	return strings.Fields(string(m[1]))
}

// TestK8sManifests checks the Jobs against each other, run.sh, the
// ConfigMap, the Secret and the Dockerfile, then runs every Job's exact
// command line, with the environment its pods would get (the ConfigMap and
// Secret, with the endpoint, credentials, tiles and output of this test),
// as one local process per completion index, at most parallelism at once,
// phase after phase in run.sh's order, into versitygw. The bucket must
// hold exactly the files of one local materialize, byte for byte.
func TestK8sManifests(t *testing.T) {
	dir := filepath.Join(testservers.RepoRoot(), "deploy", "k8s")
	objs := manifests(t, dir)
	phases := runPhases(t, filepath.Join(dir, "run.sh"))
	if want := append(slices.Clone(materializer.DataPhases), materializer.PhaseFinalize); !slices.Equal(phases, want) {
		t.Fatalf("run.sh PHASES = %v, want the materializer's order %v", phases, want)
	}
	var cm, secret *k8sObject
	for _, docs := range objs {
		for i := range docs {
			switch docs[i].Kind {
			case "ConfigMap":
				cm = &docs[i]
			case "Secret":
				secret = &docs[i]
			}
		}
	}
	if cm == nil || secret == nil {
		t.Fatal("no ConfigMap or no Secret in deploy/k8s")
	}
	partitions, err := strconv.Atoi(cm.Data["TFS_PARTITIONS"])
	if err != nil || partitions < 1 {
		t.Fatalf("ConfigMap TFS_PARTITIONS = %q: want a positive integer", cm.Data["TFS_PARTITIONS"])
	}
	dockerfile, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	imageBin := regexp.MustCompile(`(?m)^COPY --from=build /out/tesserafs (\S+)$`).FindSubmatch(dockerfile)
	if imageBin == nil {
		t.Fatal("the Dockerfile does not copy /out/tesserafs into the image")
	}
	checkDockerfileGo(t, dockerfile)

	jobs := make([]*k8sObject, len(phases))
	for i, p := range phases {
		f := "job-" + p + ".yaml"
		if len(objs[f]) != 1 || objs[f][0].Kind != "Job" || objs[f][0].APIVersion != "batch/v1" || objs[f][0].Spec == nil {
			t.Fatalf("%s: want one batch/v1 Job", f)
		}
		j := &objs[f][0]
		jobs[i] = j
		s := j.Spec
		if len(s.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container", f)
		}
		c := s.Template.Spec.Containers[0]
		if s.Template.Spec.RestartPolicy != "Never" {
			t.Errorf("%s: restartPolicy %q, want Never (a failed pod is retried as a new pod)", f, s.Template.Spec.RestartPolicy)
		}
		if len(c.Command) == 0 || c.Command[0] != string(imageBin[1]) {
			t.Errorf("%s: command %v does not start with the image's binary %s", f, c.Command, imageBin[1])
		}
		refs := map[string]bool{}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				refs[ef.ConfigMapRef.Name] = true
			}
			if ef.SecretRef != nil {
				refs[ef.SecretRef.Name] = true
			}
		}
		if !refs[cm.Metadata.Name] || !refs[secret.Metadata.Name] {
			t.Errorf("%s: envFrom %v does not take both the ConfigMap %s and the Secret %s", f, refs, cm.Metadata.Name, secret.Metadata.Name)
		}
		args := strings.Join(c.Args, " ")
		if strings.Contains(args, "--partition ") || strings.Contains(args, "--partition=") {
			t.Errorf("%s: a fixed --partition in %q: the index must come from JOB_COMPLETION_INDEX", f, args)
		}
		if p == materializer.PhaseFinalize {
			if s.CompletionMode == "Indexed" || (s.Completions != nil && *s.Completions != 1) || !slices.Contains(c.Args, "--finalize") {
				t.Errorf("%s: want one non-indexed pod running --finalize", f)
			}
			continue
		}
		if s.CompletionMode != "Indexed" || s.Completions == nil || *s.Completions != partitions {
			t.Errorf("%s: want completionMode Indexed and completions = TFS_PARTITIONS = %d", f, partitions)
		}
		if s.Parallelism == nil || *s.Parallelism < 1 || *s.Parallelism > partitions {
			t.Errorf("%s: want 1 ≤ parallelism ≤ %d", f, partitions)
		}
		if i := slices.Index(c.Args, "--phase"); i < 0 || i+1 == len(c.Args) || c.Args[i+1] != p {
			t.Errorf("%s: args %v do not run --phase %s", f, c.Args, p)
		}
		if !slices.Contains(c.Args, "--partitions") {
			t.Errorf("%s: args %v lack --partitions (the index comes from JOB_COMPLETION_INDEX with it)", f, c.Args)
		}
		// A bad tile (exit 3) fails its index only; a usage error (2) the Job.
		actions := map[int]string{}
		if s.PodFailurePolicy != nil {
			for _, r := range s.PodFailurePolicy.Rules {
				if r.OnExitCodes != nil && r.OnExitCodes.Operator == "In" && r.OnExitCodes.ContainerName == c.Name {
					for _, v := range r.OnExitCodes.Values {
						actions[v] = r.Action
					}
				}
			}
		}
		if actions[3] != "FailIndex" || actions[2] != "FailJob" || s.BackoffLimitPerIndex == nil {
			t.Errorf("%s: want backoffLimitPerIndex and podFailurePolicy FailIndex on exit 3, FailJob on 2; have %v", f, actions)
		}
	}
	if t.Failed() {
		return
	}
	if testing.Short() {
		t.Skip("the Jobs' processes: starts versitygw and a dozen tesserafs processes")
	}

	bin := tesserafsBin(t)
	tiles := testtiles.Root(t, "test")
	want := localRun(t, bin, tiles)
	srv := testservers.Versity(t)
	const bucket, prefix = "tfs-k8s", "store/"
	srv.CreateBucket(t, bucket)
	home := t.TempDir()

	// What this test changes in the ConfigMap and the Secret: the values,
	// never the keys (a key the manifests lack is an error).
	override := func(o *k8sObject, m map[string]string, set map[string]string) {
		for k, v := range set {
			if _, ok := m[k]; !ok {
				t.Fatalf("%s %s has no %s", o.Kind, o.Metadata.Name, k)
			}
			m[k] = v
		}
	}
	override(cm, cm.Data, map[string]string{"TFS_TILES": tiles, "TFS_OUT": "s3://" + bucket + "/" + prefix,
		"AWS_ENDPOINT_URL": srv.Endpoint, "AWS_REGION": srv.Region})
	override(secret, secret.StringData, map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, p := range phases {
		j := jobs[i]
		c := j.Spec.Template.Spec.Containers[0]
		env := map[string]string{}
		for _, ef := range c.EnvFrom {
			switch {
			case ef.ConfigMapRef != nil:
				for k, v := range cm.Data {
					env[k] = v
				}
			case ef.SecretRef != nil:
				for k, v := range secret.StringData {
					env[k] = v
				}
			}
		}
		// Volumes: a local directory in place of each mount path.
		mounts := map[string]string{}
		for _, vm := range c.VolumeMounts {
			mounts[vm.MountPath] = t.TempDir()
		}
		for _, e := range c.Env {
			v := expand(e.Value, env)
			for mp, local := range mounts {
				if v == mp || strings.HasPrefix(v, mp+"/") {
					v = local + strings.TrimPrefix(v, mp)
				}
			}
			env[e.Name] = v
		}
		var argv []string
		for _, a := range append(slices.Clone(c.Command[1:]), c.Args...) {
			a = expand(a, env)
			if strings.Contains(a, "$(") {
				t.Fatalf("job-%s.yaml: %q refers to a variable the pod does not have", p, a)
			}
			argv = append(argv, a)
		}
		completions, parallelism := 1, 1
		if j.Spec.Completions != nil {
			completions = *j.Spec.Completions
		}
		if j.Spec.Parallelism != nil {
			parallelism = *j.Spec.Parallelism
		}
		sem := make(chan struct{}, parallelism)
		var wg sync.WaitGroup
		for idx := range completions {
			penv := []string{"HOME=" + home, "PATH=/usr/local/bin:/usr/bin:/bin"}
			for k, v := range env {
				penv = append(penv, k+"="+v)
			}
			if j.Spec.CompletionMode == "Indexed" {
				penv = append(penv, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", idx))
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				code, out := run(t, ctx, penv, true, bin, argv...)
				if code != 0 {
					t.Errorf("job-%s.yaml index %d: exit %d\n%s", p, idx, code, out)
				}
				// Each pod writes its own partition, the one of its index.
				if mine := fmt.Sprintf(" partition %d/%d phase %s:", idx, completions, p); j.Spec.CompletionMode == "Indexed" && !strings.Contains(out, mine) {
					t.Errorf("job-%s.yaml index %d did not write%s\n%s", p, idx, mine, out)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	got := srv.Objects(t, bucket, prefix)
	sameStore(t, "k8s", got, want)
	for k, v := range got {
		if bytes.Contains(v, []byte(srv.SecretKey)) {
			t.Errorf("%s holds the secret key", k)
		}
	}
}

// checkDockerfileGo: the build stage's Go is the go.mod version (or newer
// in the same release line), so the image builds what CI tests.
func checkDockerfileGo(t *testing.T, dockerfile []byte) {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(testservers.RepoRoot(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	modGo := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	argGo := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(dockerfile)
	if modGo == nil || argGo == nil {
		t.Fatal("no go line in go.mod or no ARG GO_VERSION in the Dockerfile")
	}
	if string(modGo[1]) != string(argGo[1]) {
		t.Errorf("Dockerfile GO_VERSION %s, go.mod go %s: keep them equal", argGo[1], modGo[1])
	}
	if !regexp.MustCompile(`(?m)^FROM golang:\$\{GO_VERSION\}-\$\{DEBIAN\} AS build$`).Match(dockerfile) ||
		!regexp.MustCompile(`(?m)^FROM debian:\$\{DEBIAN\}-slim$`).Match(dockerfile) {
		t.Error("the build and runtime stages must use the same Debian release (ARG DEBIAN): libproj's soname differs between releases")
	}
}
