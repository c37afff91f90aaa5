package ghaaction

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/testenv"
)

// TestActionSecretByValue: a secret given as build-push-action's KEY=VALUE
// reaches RUN --mount=type=secret in the real buildkitd, and its value,
// which the runner has not masked, appears in no log line but its own
// ::add-mask::, and in no output, state or summary; a bad secrets line
// fails with its line number and key, not the value.
func TestActionSecretByValue(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry", "azure")
	s := startEmulator(t, 1)
	value := "v4lue-" + testenv.RandomHex(8) + " with spaces, commas"
	multi := "first-" + testenv.RandomHex(6) + "\nsecond-" + testenv.RandomHex(6)
	dir := t.TempDir()
	df := fmt.Sprintf(`FROM %s
RUN --mount=type=secret,id=API_KEY --mount=type=secret,id=PEM mkdir /out && sha256sum < /run/secrets/API_KEY | cut -d' ' -f1 > /out/api_key && sha256sum < /run/secrets/PEM | cut -d' ' -f1 > /out/pem && echo %s > /out/nonce
FROM scratch
COPY --from=0 /out/ /
`, env.BaseImage, testenv.RandomHex(8))
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")

	t.Run("KEY=VALUE reaches the build and no log", func(t *testing.T) {
		r := runAction(t, s, s.token(t, mainRef), pushMain, buildInputs(testenv.NewBuildkitd(t), dir,
			"secrets", `"API_KEY=`+value+`"`+"\n"+`"PEM=`+multi+`"`,
			"outputs", "type=local,dest="+out))
		mustSucceed(t, r)
		for file, secret := range map[string]string{"api_key": value, "pem": multi} {
			got, err := os.ReadFile(filepath.Join(out, file))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(secret))
			if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: the build saw sha256 %s, not that of the secret", file, got)
			}
		}
		checkNoLeak(t, "secret value", value, r)
		// Each line of a multi-line secret is masked on its own, and also
		// appears (escaped) in the whole value's ::add-mask:: line.
		for _, part := range strings.Split(multi, "\n") {
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Contains(line, part) && !strings.HasPrefix(line, "::add-mask::") {
					t.Errorf("a line of a multi-line secret printed: %.120q", line)
				}
			}
			for k, v := range r.files {
				if strings.Contains(v, part) {
					t.Errorf("a line of a multi-line secret written to %s", k)
				}
			}
		}
		if !strings.Contains(r.stdout, "::add-mask::"+value+"\n") {
			t.Errorf("the secret value was not masked")
		}
	})

	t.Run("a bad line names its number and key, not the value", func(t *testing.T) {
		r := runAction(t, s, s.token(t, mainRef), pushMain, buildInputs(testenv.NewBuildkitd(t), dir,
			"secrets", "API_KEY="+value+"\nEMPTY=\n"))
		if r.code == 0 {
			t.Fatalf("a secret with an empty value was accepted\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, `input "secrets" line 2: key "EMPTY": the value is empty`) {
			t.Errorf("the error does not name the line and key:\n%s", r.stdout)
		}
		checkNoLeak(t, "secret value", value, r)
	})
}
