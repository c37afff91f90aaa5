// Package scope derives a build's cache scopes from the GitHub event that
// started it: the one scope the build may write (export) and the ordered
// scopes it reads (imports), each with the reason it is there.
//
// It is pure: Derive only computes, and EventFromEnv touches the
// environment only through the readers it is given.
//
// # Access rules, mirrored from GitHub
//
// GitHub's dependency cache
// (https://docs.github.com/en/actions/reference/workflows-and-actions/dependency-caching,
// "Restrictions for accessing a cache"):
//
//	"Workflow runs can restore caches created in either the current branch or
//	the default branch (usually main). If a workflow run is triggered for a pull
//	request, it can also restore caches created in the base branch [...]
//	Workflow runs also cannot restore caches created for different tag names.
//	When a cache is created by a workflow run triggered on a pull request, the
//	cache is created for the merge ref (refs/pull/.../merge) [...] It cannot be
//	restored by the base branch or other pull requests targeting that base branch."
//
// Derive applies the same rules to every backend: a plan imports this ref
// first, then the pull request's base, then the default branch (read from
// the payload's repository.default_branch, never assumed to be "main"). A
// pull request writes only its own scope (pr-N), a tag only its own tag
// scope (tag-…), and events that run untrusted code with the base
// repository's privileges (fork pull requests, pull_request_target,
// issue_comment, workflow_run of a fork's run) write nothing unless
// Options.AllowUntrustedExport is set, and then only to an isolated scope no
// trusted ref reads. A deleted ref (Plan.Deleted) reads and writes nothing.
//
// These are scope names. What a cache entry really writes can differ (a gha
// export writes the runtime token's ref, an explicit cache-to names its own
// place), so internal/plan's Trust applies the rule to every write: the
// final entries handed to BuildKit, cache mount saves and the gha data
// plane's indexes.
//
// # Names
//
// Scope.Key is lower-case ASCII, digits, '.' and '-', starts and ends with a
// letter or digit, is at most 64 bytes and never contains "--" or '_' — except
// that a name which had to be changed to fit (upper case, '/', '_', unicode,
// over-long) gets "--" and 8 hex digits of the SHA-256 of the full original
// ref appended: "main" stays "main", "feature/a" becomes
// "feature-a--<hash>", and a literal "feature-a" stays "feature-a". Kinds
// have their own namespaces: pull requests are "pr-<n>", tags "tag-<name>",
// merge queues "mq-<base>"; a branch whose name starts with one of those
// prefixes is always hashed, so branch "pr-42" can never share PR #42's cache.
//
// Scope.Name(plan.Build) joins the build name and the key with '_', which
// neither part contains, so different (build, scope) pairs never share a
// name: "buildkit_main", "app-linux-arm64_pr-42". The result is at most 128
// bytes and is a valid registry tag, local directory name, S3 object key
// and Azure blob name.
//
// # Backends
//
//   - registry: Name is the tag on the cache repository.
//   - local: Name is the sub-directory.
//   - s3, azblob: Name is the "name" attribute.
//   - inline: the cache travels in the image, so import the image tags built
//     for the import scopes.
//   - gha: use Plan.Build as the gha "scope", not a per-branch name. The GitHub
//     cache service already isolates refs: BuildKit's importer loads the index
//     of every ref the runtime token may read (this ref, the PR base, the
//     default branch) and the exporter writes to the token's own ref. Putting
//     the branch into the gha scope would only stop a new branch from reading
//     the default branch's cache.
//
// Matrix jobs stay apart because Plan.Build includes Options.Platform (and the
// user's cache-scope): jobs building different platforms never overwrite each
// other's cache.
//
// # Reusable workflows
//
// A called (reusable) workflow sees its caller's event, ref and payload, so it
// gets the caller's plan; nothing special is needed.
package scope
