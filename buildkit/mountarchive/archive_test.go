package mountarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "d/e"), 0o750))
	must(os.WriteFile(filepath.Join(src, "d/file"), []byte("hello"), 0o640))
	must(os.Link(filepath.Join(src, "d/file"), filepath.Join(src, "d/hard")))
	must(os.Symlink("file", filepath.Join(src, "d/link")))
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(src, "d/file"), mtime, mtime))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(src, "d/file"), 1000, 1001))
	}

	var buf bytes.Buffer
	st, err := Pack(context.Background(), src, &buf, 0)
	must(err)
	if st.Files != 5 || st.Bytes != 10 {
		t.Errorf("stats = %+v, want 5 files, 10 bytes (the hardlink counted twice)", st)
	}
	dst := t.TempDir()
	must(Unpack(context.Background(), &buf, dst, UnpackOptions{}))

	got, err := os.ReadFile(filepath.Join(dst, "d/file"))
	must(err)
	if string(got) != "hello" {
		t.Errorf("content = %q", got)
	}
	fi, err := os.Lstat(filepath.Join(dst, "d/file"))
	must(err)
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("file: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if os.Geteuid() == 0 {
		if s := fi.Sys().(*syscall.Stat_t); s.Uid != 1000 || s.Gid != 1001 {
			t.Errorf("owner = %d:%d, want 1000:1001", s.Uid, s.Gid)
		}
	}
	hard, err := os.Lstat(filepath.Join(dst, "d/hard"))
	must(err)
	if !os.SameFile(fi, hard) {
		t.Error("hardlink not kept")
	}
	if l, err := os.Readlink(filepath.Join(dst, "d/link")); err != nil || l != "file" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if di, err := os.Stat(filepath.Join(dst, "d")); err != nil || di.Mode().Perm() != 0o750 {
		t.Errorf("dir mode = %v, %v", di.Mode(), err)
	}
}

func TestPackCap(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := Pack(context.Background(), src, &buf, 99)
	if !errors.Is(err, ErrTooLarge) || st.Bytes != 100 || buf.Len() != 0 {
		t.Fatalf("err = %v, stats %+v, wrote %d", err, st, buf.Len())
	}
}

func TestHelper(t *testing.T) {
	ctx := context.Background()
	src, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RunHelper(ctx, []string{"pack", src, out, "0"}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		prefill  bool
		restored bool
	}{
		{"empty mount is restored", false, true},
		{"a mount with contents is kept", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst, res := t.TempDir(), t.TempDir()
			if tc.prefill {
				if err := os.WriteFile(filepath.Join(dst, "mine"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := RunHelper(ctx, []string{"unpack", filepath.Join(out, ArchiveFile), dst, res, "0"}, Stdio{}); err != nil {
				t.Fatal(err)
			}
			dt, err := os.ReadFile(filepath.Join(res, ReportFile))
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dst, "f"))
			if restored := bytes.Contains(dt, []byte(`"restored":true`)); restored != tc.restored || (statErr == nil) != tc.restored {
				t.Errorf("report %s, stat %v; want restored=%v", dt, statErr, tc.restored)
			}
		})
	}
	probe := t.TempDir()
	if err := RunHelper(ctx, []string{"probe", src, probe}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if dt, err := os.ReadFile(filepath.Join(probe, ReportFile)); err != nil || !bytes.Contains(dt, []byte(`"files":1,`)) {
		t.Errorf("probe report %s, %v", dt, err)
	}
	if err := RunHelper(ctx, []string{"bogus"}, Stdio{}); err == nil {
		t.Error("no usage error")
	}
}

// An archive cannot write through a symlink it created: every write stays
// inside the mount.
func TestUnpackRefusesPathsThroughSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"file under a symlink", []tar.Header{
			{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
			{Name: "out/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}},
		{"hardlink through a symlink", []tar.Header{
			{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "out/passwd"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			zw, err := zstd.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			tw := tar.NewWriter(zw)
			for _, h := range tc.entries {
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			zw.Close()
			err = Unpack(context.Background(), &buf, t.TempDir(), UnpackOptions{})
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("err = %v, want a refusal", err)
			}
		})
	}
}

// tarZst writes entries (with their contents) as a zstd tar, as an archive
// from a store might be.
func tarZst(t *testing.T, entries []tar.Header, data map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		h.Size = int64(len(data[h.Name]))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data[h.Name])); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), ArchiveFile)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHelperRestoreBoundedAndAtomic: a restore either fills the mount with
// the whole archive or leaves it empty, and never writes past the cap.
func TestHelperRestoreBoundedAndAtomic(t *testing.T) {
	ctx := context.Background()
	reg := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	for _, tc := range []struct {
		name     string
		entries  []tar.Header
		data     map[string]string
		max      string
		wantErr  string // the helper fails
		exceeded bool   // the report says over the cap
		files    int    // entries in the mount afterwards
	}{
		{"whole archive", []tar.Header{reg("a"), reg("d/b")}, map[string]string{"a": "1", "d/b": "22"}, "3", "", false, 3},
		{"over the cap restores nothing", []tar.Header{reg("a"), reg("d/b")}, map[string]string{"a": "1", "d/b": "22"}, "2", "", true, 0},
		{"a failure halfway leaves the mount empty", []tar.Header{
			reg("first"),
			{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
			reg("out/evil"),
		}, map[string]string{"first": "x"}, "0", "symlink", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := tarZst(t, tc.entries, tc.data)
			dst, res := t.TempDir(), t.TempDir()
			err := RunHelper(ctx, []string{"unpack", archive, dst, res, tc.max}, Stdio{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else {
				dt, err := os.ReadFile(filepath.Join(res, ReportFile))
				if err != nil {
					t.Fatal(err)
				}
				if got := bytes.Contains(dt, []byte(`"exceeded":true`)); got != tc.exceeded {
					t.Errorf("report %s, want exceeded=%v", dt, tc.exceeded)
				}
			}
			st, err := Measure(dst)
			if err != nil || st.Files != tc.files {
				t.Errorf("mount holds %d entries (%v), want %d", st.Files, err, tc.files)
			}
		})
	}
}

// A restore stopped halfway (the helper killed on a timeout) leaves its
// staging directory; the next probe neither counts nor keeps it, so the
// mount is restored again.
func TestHelperIgnoresAStoppedRestore(t *testing.T) {
	ctx := context.Background()
	dst, res := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(dst, stagingPrefix+"123", "half"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RunHelper(ctx, []string{"probe", dst, res}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if dt, err := os.ReadFile(filepath.Join(res, ReportFile)); err != nil || !bytes.Contains(dt, []byte(`"files":0,`)) {
		t.Errorf("probe report %s, %v", dt, err)
	}
	if empty, err := IsEmpty(dst); err != nil || !empty {
		t.Errorf("staging directory left: empty=%v %v", empty, err)
	}
}

func TestUnpackSetID(t *testing.T) {
	archive := tarZst(t, []tar.Header{
		{Name: "bin", Typeflag: tar.TypeReg, Mode: 0o6755},
		{Name: "shared", Typeflag: tar.TypeDir, Mode: 0o2775},
	}, map[string]string{"bin": "#!/bin/sh"})
	for _, tc := range []struct {
		name string
		opt  UnpackOptions
		want os.FileMode
	}{
		{"dropped by default", UnpackOptions{}, 0o755},
		{"kept on request", UnpackOptions{KeepSetID: true}, 0o755 | os.ModeSetuid | os.ModeSetgid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(archive)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dst := t.TempDir()
			if err := Unpack(context.Background(), f, dst, tc.opt); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dst, "bin"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid); got != tc.want {
				t.Errorf("mode = %v, want %v", got, tc.want)
			}
			// A directory's setgid stays: it only passes the group on.
			if di, err := os.Stat(filepath.Join(dst, "shared")); err != nil || di.Mode()&os.ModeSetgid == 0 {
				t.Errorf("directory mode = %v, %v", di.Mode(), err)
			}
		})
	}
}

// TestHelperBatch: one helper run serves several mounts, and one mount
// that fails does not stop the others.
func TestHelperBatch(t *testing.T) {
	ctx := context.Background()
	a, big := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(big, "f"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none")
	report := func(dir string, i int) Report {
		t.Helper()
		var r Report
		dt, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i), ReportFile))
		if err == nil {
			err = json.Unmarshal(dt, &r)
		}
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	packed := t.TempDir()
	if err := RunHelper(ctx, []string{"pack-all", packed, "10", a, missing, big}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if r := report(packed, 0); r.Files != 1 || r.Error != "" {
		t.Errorf("pack 0: %+v", r)
	}
	if r := report(packed, 1); r.Error == "" {
		t.Errorf("pack of a missing directory: %+v", r)
	}
	if r := report(packed, 2); !r.Exceeded {
		t.Errorf("pack over the cap: %+v", r)
	}

	dst0, dst1 := t.TempDir(), t.TempDir()
	restored := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.tar.zst")
	if err := os.WriteFile(bad, []byte("not zstd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RunHelper(ctx, []string{"unpack-all", restored, "0", "drop-setid", bad, dst0, filepath.Join(packed, "0", ArchiveFile), dst1}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if r := report(restored, 0); r.Error == "" || r.Restored {
		t.Errorf("unpack of a bad archive: %+v", r)
	}
	if r := report(restored, 1); !r.Restored || r.Files != 1 {
		t.Errorf("unpack 1: %+v", r)
	}

	probed := t.TempDir()
	if err := RunHelper(ctx, []string{"probe-all", probed, dst0, dst1}, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if r0, r1 := report(probed, 0), report(probed, 1); r0.Files != 0 || r1.Files != 1 {
		t.Errorf("probe: %+v %+v", r0, r1)
	}
}

// Two helpers on one shared mount: the second waits for the first's
// restore, then finds the mount full and keeps it.
func TestHelperLocksTheMount(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	res := t.TempDir()
	go func() { done <- RunHelper(context.Background(), []string{"probe", dir, res}, Stdio{}) }()
	select {
	case err := <-done:
		t.Fatalf("probe ran while another helper held the mount: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, "restored"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dt, err := os.ReadFile(filepath.Join(res, ReportFile)); err != nil || !bytes.Contains(dt, []byte(`"files":1,`)) {
		t.Errorf("probe report %s, %v", dt, err)
	}
}

// TestHelperStreams runs the stream commands a gateway container runs:
// a restore through stdin, a probe, and a save through stdout that is
// skipped while the tree is as restored, and made once anything in it
// changed.
func TestHelperStreams(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	for name, data := range map[string]string{"a/f": "x", "a/g": "yy", "top": "z"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a/f", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	packed, err := Pack(ctx, src, &archive, 0)
	if err != nil {
		t.Fatal(err)
	}

	dst := t.TempDir()
	var out bytes.Buffer
	if err := RunHelper(ctx, []string{"unpack-stream", dst, "0", "drop-setid"}, Stdio{In: bytes.NewReader(archive.Bytes()), Out: &out}); err != nil {
		t.Fatal(err)
	}
	var restored Report
	if err := json.Unmarshal(out.Bytes(), &restored); err != nil || !restored.Restored || restored.Files != 5 {
		t.Fatalf("unpack-stream report %s, %v", out.Bytes(), err)
	}
	// The tar keeps whole seconds, so a restored tree is not the packed
	// one: bkcache compares the mount with itself just after the restore.
	if restored.Tree == "" || packed.Tree == "" {
		t.Errorf("restored tree %q, packed %q", restored.Tree, packed.Tree)
	}
	out.Reset()
	if err := RunHelper(ctx, []string{"probe-stream", dst, t.TempDir()}, Stdio{Out: &out}); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"files":5`) || !strings.Contains(lines[1], `"files":0`) {
		t.Errorf("probe-stream printed %q", out.String())
	}

	save := func() (Report, int) {
		t.Helper()
		var archive, report bytes.Buffer
		if err := RunHelper(ctx, []string{"pack-stream", dst, "0", restored.Tree}, Stdio{Out: &archive, Err: &report}); err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(report.Bytes(), &rep); err != nil {
			t.Fatalf("pack-stream report %q: %v", report.String(), err)
		}
		return rep, archive.Len()
	}
	if rep, n := save(); !rep.Unchanged || n != 0 {
		t.Fatalf("save of the restored tree: %+v, %d bytes; want it skipped", rep, n)
	}
	for _, change := range []struct {
		name string
		do   func(string) error
	}{
		{"a file's time", func(p string) error {
			return os.Chtimes(filepath.Join(p, "a/f"), time.Now(), time.Now().Add(time.Hour))
		}},
		{"a mode", func(p string) error { return os.Chmod(filepath.Join(p, "top"), 0o600) }},
		{"a new file", func(p string) error { return os.WriteFile(filepath.Join(p, "a/new"), nil, 0o644) }},
	} {
		before, err := Measure(dst)
		if err != nil {
			t.Fatal(err)
		}
		if err := change.do(dst); err != nil {
			t.Fatal(err)
		}
		after, err := Measure(dst)
		if err != nil {
			t.Fatal(err)
		}
		if before.Tree == after.Tree {
			t.Errorf("%s: the tree did not change", change.name)
		}
	}
	if rep, n := save(); rep.Unchanged || n == 0 || rep.Error != "" {
		t.Fatalf("save of a changed tree: %+v, %d bytes; want an archive", rep, n)
	}
	if err := RunHelper(ctx, []string{"unpack-stream", dst, "0", "keep-it"}, Stdio{}); err == nil {
		t.Error("unpack-stream took a bad setid word")
	}
}

// TestHelperFreshSince: a mount that holds only what changed since the
// time given (what a stopped build's step wrote) is probed as fresh and
// restored over; one that holds anything older is the builder's own and
// is kept.
func TestHelperFreshSince(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "cached"), []byte("from the store"), 0o644); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := Pack(ctx, src, &archive, 0); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	owned, stopped := t.TempDir(), t.TempDir()
	write(owned, "old")
	// The kernel's file times are coarse: keep the writes apart.
	time.Sleep(50 * time.Millisecond)
	since := time.Now()
	time.Sleep(50 * time.Millisecond)
	write(owned, "new")
	write(stopped, "partial/one")
	write(stopped, "two")
	arg := "fresh-since=" + strconv.FormatInt(since.UnixNano(), 10)

	var out bytes.Buffer
	if err := RunHelper(ctx, []string{"probe-stream", arg, owned, stopped}, Stdio{Out: &out}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], `"fresh"`) || !strings.Contains(lines[1], `"fresh":true`) {
		t.Fatalf("probe-stream printed %q; want the first kept, the second fresh", out.String())
	}
	for _, tc := range []struct {
		dir       string
		restored  bool
		discarded int
	}{
		{owned, false, 0},
		{stopped, true, 3},
	} {
		out.Reset()
		if err := RunHelper(ctx, []string{"unpack-stream", tc.dir, "0", "drop-setid", arg}, Stdio{In: bytes.NewReader(archive.Bytes()), Out: &out}); err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(filepath.Join(tc.dir, "cached"))
		if rep.Restored != tc.restored || rep.Discarded != tc.discarded || (statErr == nil) != tc.restored {
			t.Errorf("%s: %+v, stat %v; want restored %t over %d", tc.dir, rep, statErr, tc.restored, tc.discarded)
		}
	}
	if err := RunHelper(ctx, []string{"probe-stream", "fresh-since=soon", src}, Stdio{Out: &out}); err == nil {
		t.Error("probe-stream took a bad time")
	}
}
