package ghacache

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bkcache/bkcache/ghacache/emulator"
)

// mountKey is the key internal/mountstore saves scope app's archive of
// mount key k under at stamp n.
func mountKey(k string, n int64) string {
	return MountKey("app", k, time.Unix(0, n))
}

func (e economyEnv) saveAs(c *Client, key, version string) {
	e.t.Helper()
	data := []byte("archive " + key)
	if err := c.Save(context.Background(), key, version, strings.NewReader(string(data)), int64(len(data))); err != nil {
		e.t.Fatal(err)
	}
}

func TestPruneMounts(t *testing.T) {
	ctx := context.Background()
	other := []string{"other-tool-key", MountKeyPrefix + "app~x~not_base36", MountKeyPrefix + "app-x-1"}
	tests := []struct {
		name  string
		saved []string // in the order saved, on main (MountVersion)
		// readNone: this job read no entries; else it read them before
		// every save (the stamps here are nanoseconds after the epoch).
		readNone bool
		want     []string // left on main, besides other
	}{
		{
			name:  "keeps the newest of each series",
			saved: []string{mountKey("gomod", 1), mountKey("gomod", 2), mountKey("gobuild", 1), mountKey("gomod", 3), mountKey("bkcache-build-record-last", 1), mountKey("bkcache-build-record-last", 2), mountKey("bkcache-build-record-prev", 1)},
			want:  []string{mountKey("bkcache-build-record-last", 2), mountKey("bkcache-build-record-prev", 1), mountKey("gobuild", 1), mountKey("gomod", 3)},
		},
		{
			name:  "a series that prefixes another is its own",
			saved: []string{mountKey("go", 1), mountKey("go-build", 1), mountKey("go", 2)},
			want:  []string{mountKey("go", 2), mountKey("go-build", 1)},
		},
		{
			// Entries seconds apart: all within the grace.
			name:     "a job that read none keeps what was read within the grace",
			saved:    []string{mountKey("gomod", 1), mountKey("gomod", 2)},
			readNone: true,
			want:     []string{mountKey("gomod", 1), mountKey("gomod", 2)},
		},
		{
			name:  "a single save stays",
			saved: []string{mountKey("gomod", 1)},
			want:  []string{mountKey("gomod", 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEconomyEnv(t)
			main, pr := e.job(mainRef), e.job(prRef, mainRef)
			for _, k := range tt.saved {
				e.saveAs(main, k, MountVersion)
				e.saveAs(pr, k, MountVersion) // another ref's: untouched
			}
			for _, k := range other {
				e.saveAs(main, k, MountVersion)
			}
			e.saveAs(main, mountKey("gomod", 0), "another-version")
			prBefore := e.keys(prRef)
			readAt := time.Unix(0, 0)
			if tt.readNone {
				readAt = time.Time{}
			}

			n, freed, err := e.rest.PruneMounts(ctx, "o", "r", mainRef, readAt)
			if err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(tt.want), other...)
			want = append(want, mountKey("gomod", 0))
			slices.Sort(want)
			if got := e.keys(mainRef); !slices.Equal(got, want) {
				t.Errorf("left on main %v, want %v", got, want)
			}
			if n != len(tt.saved)-len(tt.want) || (n > 0) != (freed > 0) {
				t.Errorf("PruneMounts = %d, %d B; want %d deleted", n, freed, len(tt.saved)-len(tt.want))
			}
			if got := e.keys(prRef); !slices.Equal(got, prBefore) {
				t.Errorf("the pull request's entries changed: %v -> %v", prBefore, got)
			}
		})
	}
}

// TestEconomyKnowsMounts: the sweep never takes mount archives or build
// records for unreferenced layer blobs, and a ref's cleanup (pull request
// closed, merge queue) takes them with the ref.
func TestEconomyKnowsMounts(t *testing.T) {
	ctx := context.Background()
	const mq = "refs/heads/gh-readonly-queue/main/pr-1-0123456789abcdef0123456789abcdef01234567"
	mounts := []string{mountKey("gomod", 1), mountKey("bkcache-build-record-last", 1)}
	tests := []struct {
		name     string
		ref      string
		run      func(e economyEnv, c *Client) error
		wantLeft bool // the ref's mount entries survive; else all the ref's entries go
	}{
		{
			name: "sweep keeps them",
			ref:  mainRef,
			run: func(e economyEnv, c *Client) error {
				_, err := SweepRef(ctx, e.rest, c, "o", "r", mainRef, "app", time.Nanosecond)
				return err
			},
			wantLeft: true,
		},
		{
			name: "cleanup after export with sweep keeps the newest",
			ref:  mainRef,
			run: func(e economyEnv, c *Client) error {
				_, err := e.rest.CleanupAfterExport(ctx, c, ExportCleanup{Owner: "o", Repo: "r", Ref: mainRef, Scope: "app", Sweep: true, SweepGrace: time.Nanosecond, Mounts: true})
				return err
			},
			wantLeft: true,
		},
		{
			name: "a closed pull request's go",
			ref:  prRef,
			run: func(e economyEnv, c *Client) error {
				_, _, _, err := e.rest.CleanupRef(ctx, "o", "r", prRef, time.Now().Add(3*time.Hour))
				return err
			},
		},
		{
			name: "a merge-queue ref's go",
			ref:  mq,
			run: func(e economyEnv, c *Client) error {
				_, err := e.rest.CleanupAfterExport(ctx, c, ExportCleanup{Owner: "o", Repo: "r", Ref: mq, Scope: "app", Transient: true, Now: time.Now().Add(3 * time.Hour), Mounts: true})
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEconomyEnv(t)
			main := e.job(mainRef)
			for _, k := range mounts {
				e.saveAs(main, k, MountVersion)
			}
			c := main
			if tt.ref != mainRef {
				c = e.job(tt.ref, mainRef)
				for _, k := range mounts {
					e.saveAs(c, k, MountVersion)
				}
			}
			e.saveBlob(c, "a")
			e.saveBlob(c, "old")
			e.saveIndex(c, tt.ref, "a")
			if err := tt.run(e, c); err != nil {
				t.Fatal(err)
			}
			left := e.keys(tt.ref)
			// The cleanup ran: the blob no index names went too.
			if slices.Contains(left, BlobKey(layer("old").String())) {
				t.Errorf("%s: the unnamed blob survived: %v", tt.ref, left)
			}
			for _, k := range mounts {
				if slices.Contains(left, k) != tt.wantLeft {
					t.Errorf("%s on %s: left %v, want kept %v", k, tt.ref, left, tt.wantLeft)
				}
				if !slices.Contains(e.keys(mainRef), k) {
					t.Errorf("%s on main was deleted", k)
				}
			}
		})
	}
}

func TestMountUsage(t *testing.T) {
	e := newEconomyEnv(t)
	main, pr := e.job(mainRef), e.job(prRef, mainRef)
	size := func(k string) int64 { return int64(len("archive " + k)) }
	e.saveAs(main, mountKey("gomod", 1), MountVersion)
	e.saveAs(pr, mountKey("gomod", 2), MountVersion)
	// Not archives: a build record, another version, BuildKit's blobs.
	e.saveAs(main, mountKey("bkcache-build-record-last", 1), MountVersion)
	e.saveAs(main, mountKey("gobuild", 1), "another-version")
	e.saveBlob(main, "a")
	got, err := e.rest.MountUsage(context.Background(), "o", "r")
	if want := size(mountKey("gomod", 1)) + size(mountKey("gomod", 2)); err != nil || got != want {
		t.Errorf("MountUsage = %d, %v; want %d", got, err, want)
	}
}

// TestPruneMountsKeepsOthersReads: on the service's own clock (real time,
// as GitHub's), a superseded archive that another job looked up after
// this job read its own stays, and one only this job read goes.
func TestPruneMountsKeepsOthersReads(t *testing.T) {
	ctx := context.Background()
	for _, other := range []bool{false, true} {
		t.Run(map[bool]string{false: "only this job read it", true: "another job read it since"}[other], func(t *testing.T) {
			env := newEmuEnvConfig(t, emulator.Config{Blobs: azuriteStore(t)})
			rest, err := NewREST(env.srv.Client(), env.srv.URL, "ghs_anytoken")
			if err != nil {
				t.Fatal(err)
			}
			e := economyEnv{emuEnv: env, t: t, clock: &steppingClock{}, rest: rest}
			job := func() *Client {
				tok, err := env.emu.Token(emulator.TokenOptions{Repo: "o/r", Write: mainRef, Now: time.Now()})
				if err != nil {
					t.Fatal(err)
				}
				c, err := NewClient(Config{ResultsURL: env.srv.URL, Token: tok, ServiceV2: true})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			restore := func(c *Client) {
				p := MountSeriesKey("app", "gomod")
				if _, ok, err := c.Lookup(ctx, p, []string{p}, MountVersion); err != nil || !ok {
					t.Fatalf("lookup: %v, %v", ok, err)
				}
			}
			// As mountstore.GHA names a save: the saver's clock.
			save := func(c *Client) string {
				k := mountKey("gomod", time.Now().UnixNano())
				e.saveAs(c, k, MountVersion)
				return k
			}
			this := job()
			first := save(this)
			time.Sleep(50 * time.Millisecond)
			old := save(this)
			restore(this)
			readAt := time.Now()
			time.Sleep(200 * time.Millisecond) // more than a save's round trip
			if other {
				restore(job())
				time.Sleep(50 * time.Millisecond)
			}
			newest := save(this)
			if _, _, err := rest.PruneMounts(ctx, "o", "r", mainRef, readAt); err != nil {
				t.Fatal(err)
			}
			left := e.keys(mainRef)
			if slices.Contains(left, first) || !slices.Contains(left, newest) || slices.Contains(left, old) != other {
				t.Errorf("left %v; want %s gone, %s kept, %s kept: %v", left, first, newest, old, other)
			}
		})
	}
}

func FuzzMountSeries(f *testing.F) {
	f.Add(mountKey("gomod", 42))
	f.Add(mountKey("go-build", 0))
	f.Add(MountKeyPrefix + "x~y~not_base36")
	f.Add(MountKey("a~b,c", "x~1", time.Unix(0, 7)))
	f.Add("buildkit-blob-1-sha256:00")
	f.Add(MountKeyPrefix)
	f.Fuzz(func(t *testing.T, key string) {
		series, n, ok := mountSeries(key)
		if !ok {
			return
		}
		// A read looks up series: the stamp is all that follows.
		rest, found := strings.CutPrefix(key, series)
		if !found || strings.Contains(rest, mountTerminator) || n < 0 || !strings.HasPrefix(series, MountKeyPrefix) {
			t.Fatalf("mountSeries(%q) = %q, %d", key, series, n)
		}
	})
}
