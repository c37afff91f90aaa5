package main

import "github.com/bkcache/bkcache/bench/internal/rig"

// What the harness shares with bench/real, under the names it has always
// called them by.
var (
	runID     = rig.RunID
	gitCommit = rig.GitCommit
	lastLines = rig.LastLines
	freeAddr  = rig.FreeAddr
	waitHTTP  = rig.WaitHTTP
)
