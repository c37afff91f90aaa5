package builders

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/buildkit"
)

// TestLoopbackReach: which builders can connect to the runner's loopback,
// where the gha cache endpoint listens. The testbed's docker-container
// builder runs with network=host and Docker's own BuildKit runs in the
// local engine: both can; a remote tcp:// daemon and a kube pod cannot.
func TestLoopbackReach(t *testing.T) {
	env := setup(t)
	for _, tc := range []struct {
		builder string
		want    bool
		why     string
	}{
		{env.BuildxBuilder, true, "uses the host network"},
		{"default", true, "docker driver"},
		{"unix:///run/buildkit/buildkitd.sock", true, "local unix socket"},
		{"tcp://127.0.0.1:1234", true, "loopback"},
		{"tcp://10.1.2.3:1234", false, "remote"},
		{"kube-pod://buildkitd-0", false, "kube-pod"},
	} {
		t.Run(tc.builder, func(t *testing.T) {
			got, why := buildkit.LoopbackReach(context.Background(), tc.builder, os.Getenv)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("LoopbackReach = %v (%s), want %v (%s)", got, why, tc.want, tc.why)
			}
		})
	}
}
