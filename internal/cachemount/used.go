package cachemount

import "strings"

// UsedBy reports whether a build step's name, as the Dockerfile frontend
// gives it ("[stage-0 3/4] RUN --mount=type=cache,target=/x go build"),
// mounts m. The frontend expands build variables in the name, so a name
// matches when it mounts one of m's literal targets.
func (m Mount) UsedBy(stepName string) bool {
	if !strings.Contains(stepName, "--mount=") {
		return false
	}
	for _, t := range m.Targets {
		for _, k := range []string{"target=", "dst=", "destination="} {
			for rest := stepName; ; {
				i := strings.Index(rest, k+t)
				if i < 0 {
					break
				}
				rest = rest[i+len(k)+len(t):]
				if rest == "" || rest[0] == ',' || rest[0] == ' ' || rest[0] == '"' {
					return true
				}
			}
		}
	}
	return false
}
