package scope

import "testing"

// What package scope_test needs to check the safety invariant on the final
// cache entries: it may import internal/plan, which imports scope.

// Fixture is one realistic run of testdata, named.
type Fixture struct {
	Name  string
	Event Event
}

// Fixtures returns every fixture's event.
func Fixtures(t testing.TB) []Fixture {
	var out []Fixture
	for _, f := range fixtures {
		out = append(out, Fixture{f.name, f.event(t)})
	}
	return out
}

// TrustRank orders plans by how much the code they build is trusted.
func TrustRank(p Plan) int { return trustRank(p) }
