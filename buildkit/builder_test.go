package buildkit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeBuildx writes a buildx store under dir/buildx.
func writeBuildx(t *testing.T, dir, current string, instances map[string]string) {
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

func TestResolveBuilder(t *testing.T) {
	// What docker/setup-buildx-action leaves behind (buildx v0.2x format).
	containerBuilder := `{"Name":"builder-3f2a","Driver":"docker-container","Nodes":[{"Name":"builder-3f2a0","Endpoint":"builders","Platforms":null,"DriverOpts":{"network":"host"},"Flags":["--debug"],"Files":null}],"Dynamic":false}`
	remoteBuilder := `{"Name":"remote","Driver":"remote","Nodes":[{"Name":"remote0","Endpoint":"tcp://buildkitd:1234","DriverOpts":{"cacert":"/c/ca.pem","cert":"/c/cert.pem","key":"/c/key.pem","servername":"bk"}}]}`

	tests := []struct {
		name      string
		input     string
		env       map[string]string
		current   string
		instances map[string]string
		useHome   bool
		want      Endpoint
		wantErr   string
	}{
		{name: "input unix", input: "unix:///run/buildkit/buildkitd.sock", env: map[string]string{"BUILDKIT_HOST": "tcp://ignored:1"},
			want: Endpoint{Addr: "unix:///run/buildkit/buildkitd.sock", Source: "builder"}},
		{name: "input tcp with tls", input: "tcp://10.0.0.1:1234?cacert=/ca.pem&cert=/c.pem&key=/k.pem&servername=bk",
			want: Endpoint{Addr: "tcp://10.0.0.1:1234", Source: "builder", CACert: "/ca.pem", Cert: "/c.pem", Key: "/k.pem", ServerName: "bk"}},
		{name: "input docker-container", input: "docker-container://buildkitd",
			want: Endpoint{Addr: "docker-container://buildkitd", Source: "builder"}},
		{name: "input kube-pod", input: "kube-pod://buildkitd-0?namespace=ci",
			want: Endpoint{Addr: "kube-pod://buildkitd-0?namespace=ci", Source: "builder"}},
		{name: "input unknown scheme", input: "http://x", wantErr: `builder: unknown scheme "http" in "http://x" (allowed: unix, tcp, docker-container, kube-pod)`},
		{name: "input no scheme", input: "/run/buildkit.sock", wantErr: `builder: "/run/buildkit.sock" is not an address`},
		{name: "input tcp unknown param", input: "tcp://h:1?ca=x", wantErr: `unknown parameter "ca"`},
		{name: "input tcp no host", input: "tcp://", wantErr: "has no host"},
		{name: "BUILDKIT_HOST", env: map[string]string{"BUILDKIT_HOST": "tcp://127.0.0.1:1234"},
			want: Endpoint{Addr: "tcp://127.0.0.1:1234", Source: "BUILDKIT_HOST"}},
		{name: "bad BUILDKIT_HOST", env: map[string]string{"BUILDKIT_HOST": "nope"}, wantErr: "BUILDKIT_HOST: "},
		{name: "buildx docker-container", current: `{"Key":"unix:///var/run/docker.sock","Name":"builder-3f2a","Global":false}`,
			instances: map[string]string{"builder-3f2a": containerBuilder},
			want:      Endpoint{Addr: "docker-container://buildx_buildkit_builder-3f2a0?context=builders", Source: `buildx builder "builder-3f2a"`}},
		{name: "buildx in HOME", useHome: true, current: `{"Key":"k","Name":"Builder-3F2A","Global":true}`,
			instances: map[string]string{"builder-3f2a": strings.Replace(containerBuilder, `"builders"`, `"unix:///var/run/docker.sock"`, 1)},
			want:      Endpoint{Addr: "docker-container://buildx_buildkit_builder-3f2a0", Source: `buildx builder "Builder-3F2A"`}},
		{name: "buildx remote", current: `{"Name":"remote"}`, instances: map[string]string{"remote": remoteBuilder},
			want: Endpoint{Addr: "tcp://buildkitd:1234", Source: `buildx builder "remote"`, CACert: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", ServerName: "bk"}},
		{name: "buildx docker driver", current: `{"Name":"default"}`, instances: map[string]string{"default": `{"Name":"default","Driver":"docker","Nodes":[{"Name":"default"}]}`},
			wantErr: `buildx builder "default" uses the "docker" driver`},
		{name: "buildx default builder", current: `{"Key":"unix:///var/run/docker.sock","Name":""}`, wantErr: "no BuildKit builder found"},
		{name: "buildx missing instance", current: `{"Name":"gone"}`, wantErr: `reading buildx builder "gone"`},
		{name: "buildx bad json", current: `{`, wantErr: "reading buildx builder"},
		{name: "buildx no nodes", current: `{"Name":"empty"}`, instances: map[string]string{"empty": `{"Name":"empty","Driver":"docker-container","Nodes":[]}`},
			wantErr: "has no nodes"},
		{name: "buildx path in name", current: `{"Name":"../x"}`, wantErr: "invalid"},
		{name: "nothing", wantErr: "set BUILDKIT_HOST, run docker/setup-buildx-action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.useHome {
				env["HOME"] = dir
				dir = filepath.Join(dir, ".docker")
			} else {
				env["DOCKER_CONFIG"] = dir
			}
			if tt.current != "" || tt.instances != nil {
				writeBuildx(t, dir, tt.current, tt.instances)
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
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveBuilderNoneIsErrNoBuilder(t *testing.T) {
	_, err := ResolveBuilder("", fakeEnv(nil))
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
