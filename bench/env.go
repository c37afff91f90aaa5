package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// env is the test environment of scripts/testenv (.testenv/env).
type env struct {
	buildkitd, buildkitdCfg, buildctl string
	registry, baseImage               string
	s3Endpoint, s3Bucket, s3Region    string
	s3Access, s3Secret, s3Root        string
	azURL, azName, azKey              string
	ghaURL, ghaSecretFile, ghaCLI     string
	// buildx is the testbed's docker-container builder -builder picked;
	// "" for the harness's own buildkitds.
	buildx string
}

func loadEnv(o options) (env, error) {
	g := os.Getenv
	e := env{
		buildkitd: g("BKCACHE_TEST_BUILDKITD"), buildkitdCfg: g("BKCACHE_TEST_BUILDKITD_CONFIG"),
		registry: g("BKCACHE_TEST_REGISTRY"), baseImage: g("BKCACHE_TEST_BASE_IMAGE"),
		s3Endpoint: g("BKCACHE_TEST_S3_ENDPOINT"), s3Bucket: g("BKCACHE_TEST_S3_BUCKET"), s3Region: g("BKCACHE_TEST_S3_REGION"),
		s3Access: g("BKCACHE_TEST_S3_ACCESS_KEY"), s3Secret: g("BKCACHE_TEST_S3_SECRET_KEY"),
		azURL: g("BKCACHE_TEST_AZURE_ACCOUNT_URL"), azName: g("BKCACHE_TEST_AZURE_ACCOUNT_NAME"), azKey: g("BKCACHE_TEST_AZURE_ACCOUNT_KEY"),
		ghaURL: g("BKCACHE_TEST_GHA_URL"), ghaSecretFile: g("BKCACHE_TEST_GHA_SECRET_FILE"),
	}
	var missing []string
	need := func(name, v string) {
		if v == "" {
			missing = append(missing, name)
		}
	}
	need("BKCACHE_TEST_BUILDKITD", e.buildkitd)
	need("BKCACHE_TEST_BUILDKITD_CONFIG", e.buildkitdCfg)
	need("BKCACHE_TEST_REGISTRY", e.registry)
	need("BKCACHE_TEST_BASE_IMAGE", e.baseImage)
	used := append(append([]string{}, o.backends...), o.compBackends...)
	for _, b := range used {
		switch b {
		case "s3":
			need("BKCACHE_TEST_S3_ENDPOINT", e.s3Endpoint)
			need("BKCACHE_TEST_S3_BUCKET", e.s3Bucket)
			need("BKCACHE_TEST_S3_ACCESS_KEY", e.s3Access)
			need("BKCACHE_TEST_S3_SECRET_KEY", e.s3Secret)
		case "azblob":
			need("BKCACHE_TEST_AZURE_ACCOUNT_URL", e.azURL)
			need("BKCACHE_TEST_AZURE_ACCOUNT_NAME", e.azName)
			need("BKCACHE_TEST_AZURE_ACCOUNT_KEY", e.azKey)
		case "gha", "gha-stock", "gha-endpoint":
			need("BKCACHE_TEST_AZURE_ACCOUNT_URL", e.azURL)
			need("BKCACHE_TEST_GHA_URL", e.ghaURL)
			need("BKCACHE_TEST_GHA_SECRET_FILE", e.ghaSecretFile)
		}
	}
	if len(missing) > 0 {
		return e, fmt.Errorf("test environment missing %s: run `scripts/testenv up && source .testenv/env` (or `make bench`)", strings.Join(missing, ", "))
	}
	if err := e.useBuildx(o.builder); err != nil {
		return e, err
	}
	if e.s3Region == "" {
		e.s3Region = "us-east-1"
	}
	// buildctl sits next to buildkitd (scripts/testenv builds both).
	e.buildctl = filepath.Join(filepath.Dir(e.buildkitd), "buildctl")
	if _, err := os.Stat(e.buildctl); err != nil {
		p, err := exec.LookPath("buildctl")
		if err != nil {
			return e, fmt.Errorf("buildctl not found next to %s nor on PATH", e.buildkitd)
		}
		e.buildctl = p
	}
	if slices.ContainsFunc(used, isGHA) {
		p, err := exec.LookPath("gha-cache-emulator")
		if err != nil {
			return e, fmt.Errorf("gha-cache-emulator not on PATH (source .testenv/env): %w", err)
		}
		e.ghaCLI = p
	}
	e.s3Root = o.s3Root
	if e.s3Root == "" {
		e.s3Root = filepath.Join(filepath.Dir(e.buildkitdCfg), "s3")
	}
	return e, nil
}

// useBuildx points the environment at the testbed's docker-container
// builder (scripts/testenv-builders up, .testenv/builders.env). The bridge
// builder cannot reach the loopback registry: it pulls and pushes through
// the testbed's forwarder on the bridge's gateway, and so does the harness.
func (e *env) useBuildx(which string) error {
	g := os.Getenv
	var name string
	switch which {
	case "docker-container":
		name = g("BKCACHE_TEST_BUILDX_BUILDER")
	case "bridge":
		name = g("BKCACHE_TEST_BRIDGE_BUILDER")
		reg := g("BKCACHE_TEST_BRIDGE_REGISTRY")
		if name == "" || reg == "" {
			return fmt.Errorf("-builder bridge: BKCACHE_TEST_BRIDGE_BUILDER and BKCACHE_TEST_BRIDGE_REGISTRY unset: run `scripts/testenv-builders up && source .testenv/builders.env`")
		}
		e.baseImage = reg + strings.TrimPrefix(e.baseImage, e.registry)
		e.registry = reg
	default:
		return nil
	}
	host, cfg := g("BKCACHE_TEST_DOCKER_HOST"), g("BKCACHE_TEST_DOCKER_CONFIG")
	if name == "" || host == "" || cfg == "" {
		return fmt.Errorf("-builder %s: the testbed's builders are not set up: run `scripts/testenv-builders up && source .testenv/builders.env`", which)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("-builder %s: docker CLI not on PATH: %w", which, err)
	}
	// For docker buildx prune, bkcache --builder and buildctl's docker-container://.
	os.Setenv("DOCKER_HOST", host)
	os.Setenv("DOCKER_CONFIG", cfg)
	e.buildx = name
	return nil
}
