package cachemount

import "slices"

// Values of the cache-mounts input besides a list of ids.
const (
	Auto = "auto" // every mount found
	None = "none" // the feature is off
)

// CacheID is the id BuildKit gives the mount: dockerfile2llb prefixes it
// with the BUILDKIT_CACHE_MOUNT_NS build argument and a slash.
func (m Mount) CacheID(namespace string) string { return namespace + "/" + m.ID }

// Select keeps the mounts the cache-mounts input asks for: all of them for
// [Auto], none for [None], else those whose id is listed. It also returns
// the listed ids that match no mount, so the log can name them.
func Select(found []Mount, want []string) (selected []Mount, unknown []string) {
	switch {
	case len(want) == 0 || slices.Equal(want, []string{Auto}):
		return found, nil
	case slices.Equal(want, []string{None}):
		return nil, nil
	}
	for _, m := range found {
		if slices.Contains(want, m.ID) {
			selected = append(selected, m)
		}
	}
	for _, id := range want {
		if !slices.ContainsFunc(found, func(m Mount) bool { return m.ID == id }) {
			unknown = append(unknown, id)
		}
	}
	return selected, unknown
}
