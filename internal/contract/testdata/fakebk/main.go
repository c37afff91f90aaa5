package main

import (
	"os"
	"strings"

	"github.com/bkcache/bkcache/internal/ghaction"
)

func main() {
	r := ghaction.New(nil, nil)
	var secrets []string
	for _, l := range r.MultilineInput("cache") {
		for _, kv := range strings.Split(l, ",") {
			if v, ok := strings.CutPrefix(kv, "secret_access_key="); ok {
				secrets = append(secrets, v)
			}
		}
	}
	r.MaskSecrets(append(secrets, os.Getenv("ACTIONS_RUNTIME_TOKEN"), r.Input("github-token"))...)
	if len(os.Args) > 1 && os.Args[1] == "post" {
		os.Exit(0)
	}
	r.SaveState("bkcache_main_ran", "true")
	c := r.Input("cache")
	if strings.Contains(c, "type=nope") {
		r.Error(`input "cache": unknown type "nope" (allowed: gha, registry)`)
		os.Exit(1)
	}
	scope := r.Input("cache-scope")
	r.Group("plan for "+scope, func() error { r.Logf("scope %s, cache %s", scope, c); return nil })
	r.SetOutput("cache-from", c+":"+scope)
	r.SetOutput("cache-to", strings.ReplaceAll(c, "secret_access_key="+strings.Join(secrets, ""), "secret_access_key=***")+":"+scope)
	r.SetOutput("cache-scope", scope+"main")
	r.WriteSummary(ghaction.RenderSummary(ghaction.Summary{Warnings: []string{"dry run " + scope}}))
}
