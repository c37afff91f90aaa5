package buildkit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bkcache/bkcache/buildkit/mountarchive"
	"github.com/bkcache/bkcache/internal/testenv"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestE2EMountHelperReachesTheBuildsCache proves the helper mounts the
// very cache a Dockerfile RUN step mounts, through either transport: a
// restore is seen by the build, and what the build writes is what a save
// returns. A download that breaks part way restores nothing.
func TestE2EMountHelperReachesTheBuildsCache(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	bin := testenv.StaticBkcache(t)
	ctx := context.Background()
	for _, transport := range []Transport{TransportContainer, TransportBuild} {
		for _, tc := range []struct {
			name  string
			flags string
			mount CacheMount
		}{
			{"id and locked", "id=m1,sharing=locked", CacheMount{CacheID: "/m1", Sharing: "locked"}},
			{"uid", "uid=1000", CacheMount{CacheID: "//c", Owned: true, UID: 1000, Mode: 0o755, Sharing: "shared"}},
		} {
			t.Run(string(transport)+"/"+tc.name, func(t *testing.T) {
				addr := testenv.NewBuildkitd(t)
				dockerfile := "FROM " + env.BaseImage + "\n" +
					"RUN --mount=type=cache,target=/c," + tc.flags + " echo " + testenv.RandomHex(6) + " && ls -ln /c > /seen && echo built > /c/by-build\n"
				ctxDir := writeContext(t, dockerfile, map[string]string{})

				h, err := NewMountHelper(ctx, addr, func(string) string { return "" }, func(ocispecs.Platform) (string, error) { return bin, nil })
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				h.SetTransport(transport)

				// An archive made from a directory on this machine.
				src := t.TempDir()
				if err := os.WriteFile(filepath.Join(src, "restored"), []byte("from archive"), 0o600); err != nil {
					t.Fatal(err)
				}
				var archive bytes.Buffer
				if _, err := mountarchive.Pack(ctx, src, &archive, 0); err != nil {
					t.Fatal(err)
				}
				if rep, err := h.Probe(ctx, tc.mount); err != nil || rep.Files != 0 {
					t.Fatalf("probe of a fresh mount: %+v %v", rep, err)
				}
				broken := io.MultiReader(bytes.NewReader(archive.Bytes()[:archive.Len()/2]), iotest.ErrReader(errors.New("connection reset")))
				if rep, err := h.Restore(ctx, tc.mount, broken, mountarchive.UnpackOptions{}); err == nil {
					t.Fatalf("restore of a broken download: %+v, want an error", rep)
				}
				if rep, err := h.Probe(ctx, tc.mount); err != nil || rep.Files != 0 {
					t.Fatalf("probe after a broken download: %+v %v; want it empty", rep, err)
				}
				rep, err := h.Restore(ctx, tc.mount, bytes.NewReader(archive.Bytes()), mountarchive.UnpackOptions{})
				if err != nil || !rep.Restored {
					t.Fatalf("restore: %+v %v", rep, err)
				}

				if rep, err := h.Probe(ctx, tc.mount); err != nil || rep.Files != 1 {
					t.Fatalf("probe after the restore: %+v %v", rep, err)
				}
				// Saved as restored: the container transport writes nothing.
				var asRestored bytes.Buffer
				reps, err := h.SaveAll(ctx, []CacheMount{tc.mount}, 0, []io.Writer{&asRestored}, []string{rep.Tree})
				if unchanged := transport == TransportContainer; err != nil || reps[0].Unchanged != unchanged || (asRestored.Len() == 0) != unchanged {
					t.Fatalf("save as restored: %+v, %d bytes, %v; want unchanged %t", reps, asRestored.Len(), err, unchanged)
				}
				// A second restore finds the mount full and keeps it.
				if rep, err := h.Restore(ctx, tc.mount, bytes.NewReader(archive.Bytes()), mountarchive.UnpackOptions{}); err != nil || rep.Restored || rep.Files != 1 {
					t.Fatalf("second restore: %+v %v", rep, err)
				}
				outDir := t.TempDir()
				mustBuild(t, addr, Request{Build: BuildOptions{Context: ctxDir, Outputs: []string{"type=local,dest=" + outDir}}})
				seen, err := os.ReadFile(filepath.Join(outDir, "seen"))
				if err != nil || !strings.Contains(string(seen), "restored") {
					t.Fatalf("the build did not see the restored file: %q %v", seen, err)
				}

				var buf bytes.Buffer
				reps, err = h.SaveAll(ctx, []CacheMount{tc.mount}, 0, []io.Writer{&buf}, []string{rep.Tree})
				if err == nil {
					rep, err = reps[0], errors.New(reps[0].Error)
					if rep.Error == "" {
						err = nil
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if rep.Files != 2 || buf.Len() == 0 {
					t.Fatalf("save: %+v, %d bytes; want 2 files", rep, buf.Len())
				}
				got := t.TempDir()
				if err := mountarchive.Unpack(ctx, &buf, got, mountarchive.UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				if dt, err := os.ReadFile(filepath.Join(got, "by-build")); err != nil || string(dt) != "built\n" {
					t.Fatalf("saved by-build = %q, %v", dt, err)
				}
				rep, err = h.Save(ctx, tc.mount, 5, &bytes.Buffer{})
				if err != nil || !rep.Exceeded {
					t.Fatalf("save over the cap: %+v %v", rep, err)
				}
				if h.Transport() != transport {
					t.Errorf("the helper fell back to %s", h.Transport())
				}
			})
		}
	}
}

// TestE2EMountHelperRestoresOverAStoppedStep: what a step wrote into a
// mount after a time is found fresh and restored over; given a later
// time, the same contents are the builder's own and are kept.
func TestE2EMountHelperRestoresOverAStoppedStep(t *testing.T) {
	env := testenv.Require(t, "buildkit", "registry")
	bin := testenv.StaticBkcache(t)
	ctx := context.Background()
	addr := testenv.NewBuildkitd(t)
	h, err := NewMountHelper(ctx, addr, func(string) string { return "" }, func(ocispecs.Platform) (string, error) { return bin, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m := CacheMount{CacheID: "//c", Sharing: "shared"} // the id BuildKit gives target=/c
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "cached"), []byte("from the store"), 0o600); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := mountarchive.Pack(ctx, src, &archive, 0); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	dockerfile := "FROM " + env.BaseImage + "\n" +
		"RUN --mount=type=cache,target=/c mkdir -p /c/partial && echo " + testenv.RandomHex(6) + " > /c/partial/obj\n"
	mustBuild(t, addr, Request{Build: BuildOptions{Context: writeContext(t, dockerfile, map[string]string{})}})
	time.Sleep(50 * time.Millisecond) // the kernel's file times are coarse
	after := time.Now()

	if reps, err := h.ProbeAll(ctx, []CacheMount{m}, after); err != nil || reps[0].Fresh || reps[0].Files != 2 {
		t.Fatalf("probe since after the build: %+v %v; want 2 files, not fresh", reps, err)
	}
	if reps, err := h.ProbeAll(ctx, []CacheMount{m}, before); err != nil || !reps[0].Fresh {
		t.Fatalf("probe since before the build: %+v %v; want fresh", reps, err)
	}
	rep, err := h.Restore(ctx, m, bytes.NewReader(archive.Bytes()), mountarchive.UnpackOptions{FreshSince: after})
	if err != nil || rep.Restored {
		t.Fatalf("restore since after the build: %+v %v; want the mount kept", rep, err)
	}
	rep, err = h.Restore(ctx, m, bytes.NewReader(archive.Bytes()), mountarchive.UnpackOptions{FreshSince: before})
	if err != nil || !rep.Restored || rep.Discarded != 2 || rep.Files != 1 {
		t.Fatalf("restore since before the build: %+v %v; want it restored over 2 entries", rep, err)
	}
}
