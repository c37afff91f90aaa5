package scope

import "testing"

// BenchmarkDerive derives the scope plan of every realistic event fixture;
// it runs once per action invocation, so it only has to stay negligible.
func BenchmarkDerive(b *testing.B) {
	for _, f := range fixtures {
		ev := f.event(b)
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Derive(ev, Options{Name: "app", Platform: "linux/arm64", DefaultBranch: "main"})
			}
		})
	}
}

// BenchmarkEventFromEnv includes reading and decoding the webhook payload,
// which is what the action really does before Derive.
func BenchmarkEventFromEnv(b *testing.B) {
	f := fixtureByName(b, "pull_request same repo")
	b.ReportAllocs()
	for b.Loop() {
		f.event(b)
	}
}
