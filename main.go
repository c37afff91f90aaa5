package main

import (
	_ "github.com/google/go-github/v57/github"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/moby/buildkit/client"
	_ "github.com/sethvargo/go-githubactions"
	_ "golang.org/x/sync/errgroup"
)

func main() {}
