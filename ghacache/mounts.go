package ghacache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// How bkcache names its own gha entries (internal/mountstore): a cache
// mount archive or a build record of gha scope S under key K is saved as
// "bkcache-mount-S~K~<unix nanoseconds, base 36>" (MountKey) with
// MountVersion. Entries are immutable, so every save adds one; a read
// looks up the series "bkcache-mount-S~K~" (MountSeriesKey) and gets the
// newest. The older entries of a series are then superseded, as
// BuildKit's older index entries are.
//
// The service matches restore keys by prefix, so no series may be the
// prefix of another: S and K are escaped (escapeKeyPart) so that "~"
// appears only as the terminator, and a series ends at its second "~".
// Before v2 the separator was "-" and mount "go" was served the newest
// of "go-build"'s archives; v2 archives are under other keys and another
// version, so the v1 ones are not read (each cache is cold once) and are
// left to the service's eviction.
const (
	MountKeyPrefix = "bkcache-mount-"
	MountVersion   = "bkcache-cache-mount-v2"
	// recordKeyPart marks build records among mount entries (see
	// internal/buildjob/explain.go): they are not mount archives.
	recordKeyPart = mountTerminator + "bkcache-build-record-"
	// mountTerminator ends the scope, the key and so the series.
	mountTerminator = "~"
)

// keyPartEscaper makes a scope or key safe in a series: no terminator,
// and no comma (the service refuses keys with one). "%" is escaped too,
// so different scopes stay different.
var keyPartEscaper = strings.NewReplacer("%", "%25", mountTerminator, "%7E", ",", "%2C")

// MountSeriesKey is the key prefix a read of scope's archive key looks
// up: exactly that archive's saves, nothing else's.
func MountSeriesKey(scope, key string) string {
	return MountKeyPrefix + keyPartEscaper.Replace(scope) + mountTerminator + keyPartEscaper.Replace(key) + mountTerminator
}

// MountKey is the key of scope's archive key saved at t.
func MountKey(scope, key string, t time.Time) string {
	return MountSeriesKey(scope, key) + strconv.FormatInt(t.UnixNano(), 36)
}

// mountSeries splits a mount entry's key into its series (the prefix a
// read looks up) and the save time.
func mountSeries(key string) (series string, stamp int64, ok bool) {
	rest, ok := strings.CutPrefix(key, MountKeyPrefix)
	if !ok || strings.Count(rest, mountTerminator) != 2 {
		return "", 0, false
	}
	i := strings.LastIndex(key, mountTerminator) + len(mountTerminator)
	n, err := strconv.ParseInt(key[i:], 36, 64)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return key[:i], n, true
}

// isMountEntry tells bkcache's mount archives and build records from
// other entries.
func isMountEntry(e CacheEntry) bool {
	_, _, ok := mountSeries(e.Key)
	return ok && e.Version == MountVersion
}

// PruneMounts deletes, on ref, the mount archive and build record entries
// that a newer entry of the same series supersedes: reads only ever get
// the newest. Only ref is touched, and the newest of every series stays,
// so an entry a read can reach is never deleted (a save that failed
// leaves its predecessor the newest). Superseded entries another job read
// after this one read its own stay too: that job may still be downloading
// (deleting under it is an eviction); the next prune takes them.
//
// readAt is when this job had read its entries, on the clock its keys'
// stamps use; zero when it read none. The service's times are on another
// clock: readAt maps to the newest entry's CreatedAt less (its stamp -
// readAt), whatever the skew. A series this job did not save keeps what
// was read within DefaultSweepGrace before its newest entry.
func (r *REST) PruneMounts(ctx context.Context, owner, repo, ref string, readAt time.Time) (deleted int, freed int64, err error) {
	if ref == "" {
		return 0, 0, errors.New("prune mounts: empty ref")
	}
	entries, err := r.List(ctx, owner, repo, ListOptions{Key: MountKeyPrefix, Ref: ref})
	if err != nil {
		return 0, 0, fmt.Errorf("prune mounts %s: %w", ref, err)
	}
	type stamped struct {
		CacheEntry
		n int64
	}
	series := map[string][]stamped{}
	for _, e := range entries {
		s, n, ok := mountSeries(e.Key)
		if !ok || e.Version != MountVersion || !sameRef(e.Ref, ref) {
			continue
		}
		series[s] = append(series[s], stamped{e, n})
	}
	for _, es := range series {
		sort.Slice(es, func(i, j int) bool {
			if es[i].n != es[j].n {
				return es[i].n > es[j].n
			}
			return es[i].CreatedAt.After(es[j].CreatedAt)
		})
		newest := es[0]
		cutoff := newest.CreatedAt.Add(-DefaultSweepGrace)
		if d := time.Unix(0, newest.n).Sub(readAt); !readAt.IsZero() && d >= 0 {
			cutoff = newest.CreatedAt.Add(-d)
		}
		for _, e := range es[1:] {
			if !e.LastAccessedAt.Before(cutoff) {
				continue
			}
			if err := r.DeleteByID(ctx, owner, repo, e.ID); err != nil {
				return deleted, freed, fmt.Errorf("prune mounts %s: %w", ref, err)
			}
			deleted++
			freed += e.SizeInBytes
		}
	}
	return deleted, freed, nil
}

// MountUsage is the bytes of the repository's cache mount archives, on
// every ref (build records, a few KiB each, are left out).
func (r *REST) MountUsage(ctx context.Context, owner, repo string) (int64, error) {
	entries, err := r.List(ctx, owner, repo, ListOptions{Key: MountKeyPrefix})
	if err != nil {
		return 0, fmt.Errorf("mount usage: %w", err)
	}
	var n int64
	for _, e := range entries {
		if isMountEntry(e) && !strings.Contains(e.Key, recordKeyPart) {
			n += e.SizeInBytes
		}
	}
	return n, nil
}
