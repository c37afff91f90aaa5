package buildkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeBuildx writes a buildx store under dir/buildx.
func writeBuildx(t testing.TB, dir, current string, instances map[string]string) {
	t.Helper()
	root := filepath.Join(dir, "buildx", "instances")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if current != "" {
		if err := os.WriteFile(filepath.Join(dir, "buildx", "current"), []byte(current), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range instances {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// testDockerHost is the Docker endpoint of the tests' default context: a
// path that exists, as a Docker socket would; nothing dials it.
const testDockerHost = "unix:///dev/null"

func TestResolveBuilder(t *testing.T) {
	// What docker/setup-buildx-action leaves behind (buildx v0.2x format).
	containerBuilder := `{"Name":"builder-3f2a","Driver":"docker-container","Nodes":[{"Name":"builder-3f2a0","Endpoint":"builders","Platforms":null,"DriverOpts":{"network":"host"},"Flags":["--debug"],"Files":null}],"Dynamic":false}`
	plainContainer := strings.Replace(containerBuilder, `"builders"`, `"default"`, 1)
	remoteBuilder := `{"Name":"remote","Driver":"remote","Nodes":[{"Name":"remote0","Endpoint":"tcp://buildkitd:1234","DriverOpts":{"cacert":"/c/ca.pem","cert":"/c/cert.pem","key":"/c/key.pem","servername":"bk"}}]}`
	halfTLSRemote := `{"Name":"half","Driver":"remote","Nodes":[{"Name":"half0","Endpoint":"tcp://buildkitd:1234","DriverOpts":{"servername":"bk"}}]}`
	current := func(name string) string {
		return `{"Key":"` + testDockerHost + `","Name":"` + name + `","Global":false}`
	}
	wantContainer := Endpoint{Addr: "docker-container://buildx_buildkit_builder-3f2a0?context=builders", Source: `buildx builder "builder-3f2a"`}
	wantPlain := Endpoint{Addr: "docker-container://buildx_buildkit_builder-3f2a0", Source: `buildx builder "builder-3f2a"`}
	wantDocker := func(source string) Endpoint {
		return Endpoint{Addr: testDockerHost, Source: source, Docker: true}
	}

	tests := []struct {
		name      string
		input     string
		env       map[string]string
		current   string
		instances map[string]string
		defaults  map[string]string // defaults/<hash of key> -> builder name
		useHome   bool
		want      Endpoint
		wantErr   string
	}{
		{name: "input unix", input: "unix:///run/buildkit/buildkitd.sock", env: map[string]string{"BUILDKIT_HOST": "tcp://ignored:1"},
			want: Endpoint{Addr: "unix:///run/buildkit/buildkitd.sock", Source: "builder"}},
		{name: "input tcp with tls", input: "tcp://10.0.0.1:1234?cacert=/ca.pem&cert=/c.pem&key=/k.pem&servername=bk",
			want: Endpoint{Addr: "tcp://10.0.0.1:1234", Source: "builder", CACert: "/ca.pem", Cert: "/c.pem", Key: "/k.pem", ServerName: "bk"}},
		{name: "input tcp with cacert only", input: "tcp://10.0.0.1:1234?cacert=/ca.pem",
			want: Endpoint{Addr: "tcp://10.0.0.1:1234", Source: "builder", CACert: "/ca.pem"}},
		{name: "input tls servername alone", input: "tcp://h:1?servername=bk",
			wantErr: `builder: TLS is on for tcp://h:1 (servername given) but cacert missing`},
		{name: "input tls cert and key without cacert", input: "tcp://h:1?cert=/c.pem&key=/k.pem",
			wantErr: `builder: TLS is on for tcp://h:1 (cert, key given) but cacert missing`},
		{name: "input tls cert without key", input: "tcp://h:1?cacert=/ca.pem&cert=/c.pem",
			wantErr: `(cacert, cert given) but key missing`},
		{name: "input tls key alone", input: "tcp://h:1?key=/k.pem",
			wantErr: `(key given) but cacert, cert missing`},
		{name: "input docker-container", input: "docker-container://buildkitd",
			want: Endpoint{Addr: "docker-container://buildkitd", Source: "builder"}},
		{name: "input kube-pod", input: "kube-pod://buildkitd-0?namespace=ci",
			want: Endpoint{Addr: "kube-pod://buildkitd-0?namespace=ci", Source: "builder"}},
		{name: "input unknown scheme", input: "http://x", wantErr: `builder: unknown scheme "http" in "http://x" (allowed: unix, tcp, docker-container, kube-pod)`},
		{name: "input neither address nor name", input: "/run/buildkit.sock", wantErr: `builder: "/run/buildkit.sock" is neither an address`},
		{name: "input tcp unknown param", input: "tcp://h:1?ca=x", wantErr: `unknown parameter "ca"`},
		{name: "input tcp no host", input: "tcp://", wantErr: "has no host"},
		{name: "input builder name", input: "builder-3f2a", instances: map[string]string{"builder-3f2a": containerBuilder},
			env: map[string]string{"BUILDKIT_HOST": "tcp://ignored:1"}, want: wantContainer},
		{name: "input builder name is case-insensitive", input: "Builder-3F2A", instances: map[string]string{"builder-3f2a": containerBuilder},
			want: wantContainer},
		{name: "input unknown builder name", input: "nope",
			wantErr: `builder: no buildx builder "nope" found in `},
		{name: "input default is the docker driver", input: "default",
			want: wantDocker(`builder: buildx builder "default" (docker driver)`)},
		{name: "BUILDKIT_HOST", env: map[string]string{"BUILDKIT_HOST": "tcp://127.0.0.1:1234"},
			want: Endpoint{Addr: "tcp://127.0.0.1:1234", Source: "BUILDKIT_HOST"}},
		{name: "bad BUILDKIT_HOST", env: map[string]string{"BUILDKIT_HOST": "nope"}, wantErr: "BUILDKIT_HOST: "},
		{name: "BUILDKIT_HOST before BUILDX_BUILDER", env: map[string]string{"BUILDKIT_HOST": "tcp://127.0.0.1:1234", "BUILDX_BUILDER": "builder-3f2a"},
			instances: map[string]string{"builder-3f2a": containerBuilder},
			want:      Endpoint{Addr: "tcp://127.0.0.1:1234", Source: "BUILDKIT_HOST"}},
		{name: "BUILDX_BUILDER before current", env: map[string]string{"BUILDX_BUILDER": "builder-3f2a"},
			current: current("remote"), instances: map[string]string{"builder-3f2a": containerBuilder, "remote": remoteBuilder},
			want: wantContainer},
		{name: "BUILDX_BUILDER unknown", env: map[string]string{"BUILDX_BUILDER": "gone"},
			wantErr: `BUILDX_BUILDER: no buildx builder "gone" found`},
		{name: "current docker-container", current: current("builder-3f2a"),
			instances: map[string]string{"builder-3f2a": containerBuilder}, want: wantContainer},
		{name: "current in HOME, global", useHome: true, current: `{"Key":"other","Name":"Builder-3F2A","Global":true}`,
			instances: map[string]string{"builder-3f2a": plainContainer}, want: wantPlain},
		{name: "builder on the Docker host of this step", input: "onhost",
			instances: map[string]string{"onhost": `{"Name":"onhost","Driver":"docker-container","Nodes":[{"Name":"onhost0","Endpoint":"` + testDockerHost + `"}]}`},
			want:      Endpoint{Addr: "docker-container://buildx_buildkit_onhost0", Source: `buildx builder "onhost"`}},
		{name: "builder on another Docker host", input: "elsewhere",
			instances: map[string]string{"elsewhere": `{"Name":"elsewhere","Driver":"docker-container","Nodes":[{"Name":"elsewhere0","Endpoint":"tcp://engine:2376"}]}`},
			wantErr:   `buildx builder "elsewhere" runs on the Docker engine at tcp://engine:2376, but this step's Docker is unix:///dev/null; set DOCKER_HOST=tcp://engine:2376 for this step`},
		{name: "current for another Docker endpoint is not used", current: `{"Key":"unix:///other.sock","Name":"builder-3f2a"}`,
			instances: map[string]string{"builder-3f2a": containerBuilder},
			want:      wantDocker(`buildx's default builder "default" (docker driver)`)},
		{name: "current for another endpoint, default for this one", current: `{"Key":"unix:///other.sock","Name":"remote"}`,
			instances: map[string]string{"builder-3f2a": containerBuilder, "remote": remoteBuilder},
			defaults:  map[string]string{testDockerHost: "builder-3f2a"}, want: wantContainer},
		{name: "current remote", current: current("remote"), instances: map[string]string{"remote": remoteBuilder},
			want: Endpoint{Addr: "tcp://buildkitd:1234", Source: `buildx builder "remote"`, CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", ServerName: "bk"}},
		{name: "current remote with half TLS", current: current("half"), instances: map[string]string{"half": halfTLSRemote},
			wantErr: `buildx builder "half": TLS is on for tcp://buildkitd:1234 (servername given) but cacert missing`},
		{name: "current docker driver builder", current: current("mydocker"),
			instances: map[string]string{"mydocker": `{"Name":"mydocker","Driver":"docker","Nodes":[{"Name":"mydocker","Endpoint":"default"}]}`},
			want:      wantDocker(`buildx builder "mydocker" (docker driver)`)},
		{name: "current is the docker driver's default", current: `{"Key":"` + testDockerHost + `","Name":""}`,
			want: wantDocker(`buildx's default builder "default" (docker driver)`)},
		{name: "removed current builder falls back", current: current("gone"),
			want: wantDocker(`buildx's default builder "default" (docker driver), as the current builder "gone" no longer exists`)},
		{name: "removed current builder and no Docker engine", current: `{"Key":"unix:///nonexistent/docker.sock","Name":"gone"}`, env: map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
			wantErr: `no BuildKit builder found: the current buildx builder "gone" no longer exists (removed?) and there is no Docker engine at unix:///nonexistent/docker.sock`},
		{name: "DOCKER_HOST is the default builder's engine", env: map[string]string{"DOCKER_HOST": "tcp://docker:2375"},
			want: Endpoint{Addr: "tcp://docker:2375", Source: `buildx's default builder "default" (docker driver)`, Docker: true}},
		{name: "no Docker engine and nothing current", env: map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
			wantErr: "no BuildKit builder found: no buildx builder is current and there is no Docker engine at unix:///nonexistent/docker.sock"},
		{name: "current bad json", current: `{`, wantErr: "reading the current buildx builder"},
		{name: "current with no nodes", current: current("empty"),
			instances: map[string]string{"empty": `{"Name":"empty","Driver":"docker-container","Nodes":[]}`},
			wantErr:   `buildx builder "empty" has no nodes`},
		{name: "current kubernetes", current: current("k8s"),
			instances: map[string]string{"k8s": `{"Name":"k8s","Driver":"kubernetes","Nodes":[{"Name":"k8s0"}]}`},
			wantErr:   `buildx builder "k8s" uses the "kubernetes" driver, which bkcache cannot reach directly`},
		{name: "current with a path as name falls back", current: current("../x"),
			want: wantDocker(`buildx's default builder "default" (docker driver), as the current builder "../x" no longer exists`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{"DOCKER_HOST": testDockerHost}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.useHome {
				env["HOME"] = dir
				dir = filepath.Join(dir, ".docker")
			} else {
				env["DOCKER_CONFIG"] = dir
			}
			writeBuildx(t, dir, tt.current, tt.instances)
			for key, name := range tt.defaults {
				d := filepath.Join(dir, "buildx", "defaults")
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, digest.FromString(key).Encoded()[:20]), []byte(name), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ResolveBuilder(tt.input, fakeEnv(env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.Docker {
				tt.want.DockerConfig = env["DOCKER_CONFIG"]
				if tt.useHome {
					tt.want.DockerConfig = dir
				}
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A Docker context selected by DOCKER_CONTEXT or config.json is the key of
// buildx's current file and the docker driver's engine.
func TestResolveBuilderDockerContext(t *testing.T) {
	dir := t.TempDir()
	// The Docker CLI's context store layout: meta/<sha256 of name>/meta.json.
	meta := filepath.Join(dir, "contexts", "meta", digest.FromString("remote-engine").Encoded())
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(meta, "meta.json"),
		[]byte(`{"Name":"remote-engine","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://engine:2376","SkipTLSVerify":false}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	writeBuildx(t, dir, `{"Key":"remote-engine","Name":"ctxbuilder"}`, map[string]string{
		"ctxbuilder": `{"Name":"ctxbuilder","Driver":"docker-container","Nodes":[{"Name":"ctxbuilder0","Endpoint":"remote-engine"}]}`,
	})
	t.Run("current for the context", func(t *testing.T) {
		got, err := ResolveBuilder("", fakeEnv(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "remote-engine"}))
		if err != nil {
			t.Fatal(err)
		}
		if want := "docker-container://buildx_buildkit_ctxbuilder0?context=remote-engine"; got.Addr != want {
			t.Errorf("Addr = %q, want %q", got.Addr, want)
		}
	})
	t.Run("config.json context", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"currentContext":"remote-engine"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(dir, "config.json")) })
		got, err := ResolveBuilder("", fakeEnv(map[string]string{"DOCKER_CONFIG": dir}))
		if err != nil {
			t.Fatal(err)
		}
		if got.Source != `buildx builder "ctxbuilder"` {
			t.Errorf("Source = %q", got.Source)
		}
	})
	t.Run("docker driver of a context", func(t *testing.T) {
		got, err := ResolveBuilder("remote-engine", fakeEnv(map[string]string{"DOCKER_CONFIG": dir}))
		if err != nil {
			t.Fatal(err)
		}
		want := Endpoint{Addr: "tcp://engine:2376", Source: `builder: buildx builder "remote-engine" (docker driver)`,
			Docker: true, DockerContext: "remote-engine", DockerConfig: dir}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("DOCKER_HOST selects the default context", func(t *testing.T) {
		got, err := ResolveBuilder("", fakeEnv(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_CONTEXT": "remote-engine", "DOCKER_HOST": "tcp://other:2375"}))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Docker || got.Addr != "tcp://other:2375" {
			t.Errorf("got %+v, want the docker driver at DOCKER_HOST", got)
		}
	})
}

// With neither DOCKER_CONFIG nor HOME there is no buildx store; nothing
// is read relative to the working directory.
func TestResolveBuilderNoConfigDir(t *testing.T) {
	t.Chdir(t.TempDir())
	writeBuildx(t, ".", `{"Key":"unix:///dev/null","Name":"here"}`, map[string]string{"here": `{"Name":"here","Driver":"remote","Nodes":[{"Name":"h0","Endpoint":"tcp://x:1"}]}`})
	ep, err := ResolveBuilder("", fakeEnv(map[string]string{"DOCKER_HOST": testDockerHost}))
	if err != nil || !ep.Docker {
		t.Errorf("got %+v, %v; want buildx's default builder", ep, err)
	}
	if _, err := ResolveBuilder("here", fakeEnv(map[string]string{"DOCKER_HOST": testDockerHost})); err == nil || !strings.Contains(err.Error(), `no buildx builder "here" found`) {
		t.Errorf("err = %v, want no builder found", err)
	}
}

func TestResolveBuilderNoneIsErrNoBuilder(t *testing.T) {
	_, err := ResolveBuilder("", fakeEnv(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock", "DOCKER_CONFIG": t.TempDir()}))
	if !errors.Is(err, ErrNoBuilder) {
		t.Fatalf("err = %v, want ErrNoBuilder", err)
	}
}

func TestEndpointClientOpts(t *testing.T) {
	if n := len((Endpoint{Addr: "unix:///s"}).ClientOpts()); n != 0 {
		t.Errorf("plain endpoint has %d options", n)
	}
	if n := len((Endpoint{Addr: "tcp://h:1", CACert: "ca", Cert: "c", Key: "k"}).ClientOpts()); n != 2 {
		t.Errorf("TLS endpoint has %d options, want 2", n)
	}
	if n := len((Endpoint{Addr: "tcp://h:1", CACert: "ca"}).ClientOpts()); n != 1 {
		t.Errorf("server-only TLS endpoint has %d options, want 1", n)
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"unix:///s", "tcp://h:1?cacert=a", "docker-container://c", "kube-pod://p?namespace=n", "http://x", "", "tcp://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := parseEndpoint("builder", s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "builder: ") {
				t.Errorf("error %q does not name the input", err)
			}
			return
		}
		if ep.Addr == "" {
			t.Errorf("accepted %q with an empty address", s)
		}
		if strings.HasPrefix(ep.Addr, "tcp:") && strings.Contains(ep.Addr, "cacert=") {
			t.Errorf("TLS parameters left in %q", ep.Addr)
		}
	})
}

// FuzzResolveBuilderInput: any builder input is an address, a builder name
// or refused with an error that names the input; nothing else is dialed.
func FuzzResolveBuilderInput(f *testing.F) {
	for _, s := range []string{"builder-3f2a", "default", "Builder_1.x", "tcp://h:1?servername=x", "../x", "a b", "unix:///s", "x://y"} {
		f.Add(s)
	}
	dir := f.TempDir()
	writeBuildx(f, dir, "", map[string]string{
		"builder-3f2a": `{"Name":"builder-3f2a","Driver":"docker-container","Nodes":[{"Name":"builder-3f2a0","Endpoint":"default"}]}`,
	})
	env := fakeEnv(map[string]string{"DOCKER_CONFIG": dir, "DOCKER_HOST": testDockerHost})
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ResolveBuilder(s, env)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "builder: ") {
				t.Errorf("error %q does not name the input", err)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			return // resolved from the environment
		}
		if ep.Addr == "" || !strings.HasPrefix(ep.Source, "builder") && !strings.HasPrefix(ep.Source, "buildx builder") {
			t.Errorf("input %q resolved to %+v", s, ep)
		}
	})
}
