package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/bkcache/bkcache/internal/cacheentry"
	"github.com/bkcache/bkcache/scope"
)

var (
	mainScope = scope.Scope{Key: "main", Ref: "refs/heads/main", Reason: scope.ReasonDefaultBranch, Kind: scope.KindBranch}
	featScope = scope.Scope{Key: "feature-a--3f2a9c01", Ref: "refs/heads/feature/a", Reason: scope.ReasonThisBranch, Kind: scope.KindBranch}
	prScope   = scope.Scope{Key: "pr-42", Ref: "refs/pull/42/merge", Reason: scope.ReasonThisPR, Kind: scope.KindPullRequest}
	baseScope = scope.Scope{Key: "main", Ref: "refs/heads/main", Reason: scope.ReasonPRBase, Kind: scope.KindBranch}
	tagScope  = scope.Scope{Key: "tag-v1.2.3", Ref: "refs/tags/v1.2.3", Reason: scope.ReasonTag, Kind: scope.KindTag}

	pushMain = scope.Plan{Build: "buildkit", Export: &mainScope, Imports: []scope.Scope{mainScope}, Trusted: true}
	pushFeat = scope.Plan{Build: "buildkit", Export: &featScope, Imports: []scope.Scope{featScope, mainScope}, Trusted: true}
	pr       = scope.Plan{Build: "app", Export: &prScope, Imports: []scope.Scope{prScope, baseScope}, Trusted: true}
	forkPR   = scope.Plan{Build: "buildkit", Imports: []scope.Scope{prScope, baseScope}, Trusted: false}
	tag      = scope.Plan{Build: "buildkit", Export: &tagScope, Imports: []scope.Scope{tagScope, mainScope}, Trusted: true}
)

func lines(s ...string) string { return strings.Join(s, "\n") }

func TestExpand(t *testing.T) {
	tests := []struct {
		name     string
		cache    []string
		from, to []string
		sp       scope.Plan
		opts     Options
		wantFrom string
		wantTo   string
	}{
		{
			name: "registry push to feature branch", cache: []string{"type=registry,ref=ghcr.io/o/app-cache"}, sp: pushFeat,
			wantFrom: lines("type=registry,ref=ghcr.io/o/app-cache:buildkit_feature-a--3f2a9c01", "type=registry,ref=ghcr.io/o/app-cache:buildkit_main"),
			wantTo:   "type=registry,ref=ghcr.io/o/app-cache:buildkit_feature-a--3f2a9c01,ignore-error=true,mode=max",
		},
		{
			name: "registry export options go to the export only", cache: []string{"type=registry,ref=ghcr.io/o/c,mode=min,compression=zstd,compression-level=3,oci-mediatypes=true,image-manifest=true,ignore-error=false,registry.insecure=true"}, sp: pushMain,
			wantFrom: "type=registry,ref=ghcr.io/o/c:buildkit_main,registry.insecure=true",
			wantTo:   "type=registry,ref=ghcr.io/o/c:buildkit_main,compression=zstd,compression-level=3,ignore-error=false,image-manifest=true,mode=min,oci-mediatypes=true,registry.insecure=true",
		},
		{
			name: "registry PR", cache: []string{"type=registry,ref=localhost:5000/cache"}, sp: pr,
			wantFrom: lines("type=registry,ref=localhost:5000/cache:app_pr-42", "type=registry,ref=localhost:5000/cache:app_main"),
			wantTo:   "type=registry,ref=localhost:5000/cache:app_pr-42,ignore-error=true,mode=max",
		},
		{
			name: "registry fork PR is read-only", cache: []string{"type=registry,ref=ghcr.io/o/c"}, sp: forkPR,
			wantFrom: lines("type=registry,ref=ghcr.io/o/c:buildkit_pr-42", "type=registry,ref=ghcr.io/o/c:buildkit_main"),
			wantTo:   "",
		},
		{
			name: "registry tag", cache: []string{"type=registry,ref=ghcr.io/o/c"}, sp: tag,
			wantFrom: lines("type=registry,ref=ghcr.io/o/c:buildkit_tag-v1.2.3", "type=registry,ref=ghcr.io/o/c:buildkit_main"),
			wantTo:   "type=registry,ref=ghcr.io/o/c:buildkit_tag-v1.2.3,ignore-error=true,mode=max",
		},
		{
			name: "local base dir", cache: []string{"type=local,dest=/var/cache/bk,tag=t,reset=true"}, sp: pushFeat,
			wantFrom: lines("type=local,src=/var/cache/bk/buildkit_feature-a--3f2a9c01,tag=t", "type=local,src=/var/cache/bk/buildkit_main,tag=t"),
			wantTo:   "type=local,dest=/var/cache/bk/buildkit_feature-a--3f2a9c01,ignore-error=true,mode=max,reset=true,tag=t",
		},
		{
			name: "local src as base", cache: []string{"type=local,src=/c"}, sp: tag,
			wantFrom: lines("type=local,src=/c/buildkit_tag-v1.2.3", "type=local,src=/c/buildkit_main"),
			wantTo:   "type=local,dest=/c/buildkit_tag-v1.2.3,ignore-error=true,mode=max",
		},
		{
			name: "gha uses the build name, not the branch", cache: []string{"type=gha,timeout=5m"}, sp: pr,
			wantFrom: "type=gha,scope=app,timeout=5m",
			wantTo:   "type=gha,scope=app,ignore-error=true,mode=max,timeout=5m",
		},
		{
			name: "gha fork PR", cache: []string{"type=gha"}, sp: forkPR,
			wantFrom: "type=gha,scope=buildkit",
		},
		{
			name: "s3 name per scope, secrets redacted", cache: []string{"type=s3,bucket=b,region=eu-1,prefix=app/,endpoint_url=http://127.0.0.1:7070,use_path_style=true,access_key_id=AKIA1234,secret_access_key=s3cr3t!,upload_parallelism=2,compression=gzip"}, sp: pr,
			wantFrom: lines(
				"type=s3,bucket=b,name=app_pr-42,access_key_id=***,endpoint_url=http://127.0.0.1:7070,prefix=app/,region=eu-1,secret_access_key=***,use_path_style=true",
				"type=s3,bucket=b,name=app_main,access_key_id=***,endpoint_url=http://127.0.0.1:7070,prefix=app/,region=eu-1,secret_access_key=***,use_path_style=true"),
			wantTo: "type=s3,bucket=b,name=app_pr-42,access_key_id=***,compression=gzip,endpoint_url=http://127.0.0.1:7070,ignore-error=true,mode=max,prefix=app/,region=eu-1,secret_access_key=***,upload_parallelism=2,use_path_style=true",
		},
		{
			name: "azblob name per scope, SAS stripped", cache: []string{"type=azblob,account_url=https://acct.blob.core.windows.net/?sv=2022&sig=SIGNATURE,container=c"}, sp: pushMain,
			wantFrom: "type=azblob,account_url=https://acct.blob.core.windows.net/?***,name=buildkit_main,container=c",
			wantTo:   "type=azblob,account_url=https://acct.blob.core.windows.net/?***,name=buildkit_main,container=c,ignore-error=true,mode=max",
		},
		{
			name: "inline imports from tags and metadata-action tags", cache: []string{"type=inline"}, sp: pushFeat,
			opts: Options{Tags: []string{"ghcr.io/o/app:feature-a", "ghcr.io/o/app:sha-1234"}, HasImageOutput: true},
			wantFrom: lines("type=registry,ref=ghcr.io/o/app:feature-a", "type=registry,ref=ghcr.io/o/app:sha-1234",
				"type=registry,ref=ghcr.io/o/app:main", "type=registry,ref=ghcr.io/o/app:latest"),
			wantTo: "type=inline,ignore-error=true,mode=min",
		},
		{
			name: "inline PR", cache: []string{"type=inline"}, sp: pr,
			opts:     Options{Tags: []string{"app:pr-42"}, HasImageOutput: true},
			wantFrom: lines("type=registry,ref=app:pr-42", "type=registry,ref=app:main"),
			wantTo:   "type=inline,ignore-error=true,mode=min",
		},
		{
			name: "inline without tags imports nothing", cache: []string{"type=inline"}, sp: pushMain,
			opts:   Options{HasImageOutput: true},
			wantTo: "type=inline,ignore-error=true,mode=min",
		},
		{
			name: "several lines, blank and comment lines skipped", cache: []string{"", "# gha first", "type=gha", "  ", "type=registry,ref=ghcr.io/o/c"}, sp: pushMain,
			wantFrom: lines("type=gha,scope=buildkit", "type=registry,ref=ghcr.io/o/c:buildkit_main"),
			wantTo:   lines("type=gha,scope=buildkit,ignore-error=true,mode=max", "type=registry,ref=ghcr.io/o/c:buildkit_main,ignore-error=true,mode=max"),
		},
		{
			name: "explicit cache-from and cache-to pass through", from: []string{"user/app:cache,user/app:other", "type=gha,scope=x"}, to: []string{"type=registry,ref=user/app:cache,mode=max"}, sp: pushMain,
			wantFrom: lines("type=registry,ref=user/app:cache", "type=registry,ref=user/app:other", "type=gha,scope=x"),
			wantTo:   "type=registry,ref=user/app:cache,ignore-error=true,mode=max",
		},
		{
			name: "explicit ignore-error=false kept", to: []string{"type=gha,ignore-error=false"}, sp: pushMain,
			wantTo: "type=gha,ignore-error=false",
		},
		{
			name: "default gha with runtime", sp: pushMain, opts: Options{GitHubRuntime: true, DefaultLocalDir: "/home/u/.cache/bkcache"},
			wantFrom: "type=gha,scope=buildkit",
			wantTo:   "type=gha,scope=buildkit,ignore-error=true,mode=max",
		},
		{
			name: "default local elsewhere", sp: pushFeat, opts: Options{DefaultLocalDir: "/home/u/.cache/bkcache"},
			wantFrom: lines("type=local,src=/home/u/.cache/bkcache/buildkit_feature-a--3f2a9c01", "type=local,src=/home/u/.cache/bkcache/buildkit_main"),
			wantTo:   "type=local,dest=/home/u/.cache/bkcache/buildkit_feature-a--3f2a9c01,ignore-error=true,mode=max",
		},
		{
			name: "duplicate imports dropped", cache: []string{"type=registry,ref=ghcr.io/o/c"}, from: []string{"type=registry,ref=ghcr.io/o/c:buildkit_main"}, sp: pushMain,
			wantFrom: "type=registry,ref=ghcr.io/o/c:buildkit_main",
			wantTo:   "type=registry,ref=ghcr.io/o/c:buildkit_main,ignore-error=true,mode=max",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Expand(tt.cache, tt.from, tt.to, tt.sp, tt.opts)
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			if got := p.CacheFrom(); got != tt.wantFrom {
				t.Errorf("CacheFrom:\n got %s\nwant %s", got, tt.wantFrom)
			}
			if got := p.CacheTo(); got != tt.wantTo {
				t.Errorf("CacheTo:\n got %s\nwant %s", got, tt.wantTo)
			}
			if err := cacheentry.ValidateSet(p.Imports, p.Exports, tt.opts.HasImageOutput); err != nil {
				t.Errorf("plan does not validate: %v", err)
			}
			for _, e := range p.Imports {
				if _, err := cacheentry.Parse(e.String(), cacheentry.Import); err != nil {
					t.Errorf("import %s does not re-parse: %v", e, err)
				}
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name     string
		cache    []string
		from, to []string
		sp       scope.Plan
		opts     Options
		is       error
		want     []string
	}{
		{name: "registry ref with tag", cache: []string{"type=registry,ref=ghcr.io/o/c:main"}, is: ErrCacheLine,
			want: []string{`input "cache" line 1`, `"ghcr.io/o/c:main"`, "without a tag"}},
		{name: "registry ref with digest", cache: []string{"", "type=registry,ref=ghcr.io/o/c@sha256:" + strings.Repeat("a", 64)},
			want: []string{`input "cache" line 2`, "without a digest"}},
		{name: "registry short form is a tag", cache: []string{"user/app:cache"}, want: []string{"without a tag"}},
		{name: "registry no ref", cache: []string{"type=registry,mode=max"}, is: cacheentry.ErrMissingKey, want: []string{`missing required key "ref"`, "ref=ghcr.io/owner/app-cache"}},
		{name: "local no dir", cache: []string{"type=local,tag=x"}, want: []string{`missing required key "dest"`}},
		{name: "local src and dest differ", cache: []string{"type=local,src=/a,dest=/b"}, want: []string{"src and dest differ"}},
		{name: "local digest", cache: []string{"type=local,dest=/a,digest=sha256:ab"}, want: []string{"digest"}},
		{name: "s3 name", cache: []string{"type=s3,bucket=b,region=r,name=main"}, is: ErrCacheLine, want: []string{`s3: key "name"`, "per scope"}},
		{name: "s3 missing region", cache: []string{"type=s3,bucket=b"}, is: cacheentry.ErrMissingKey, want: []string{`input "cache" line 1`, `"region"`, "bucket, region"}},
		{name: "azblob name", cache: []string{"type=azblob,account_url=https://a.b,name=x"}, want: []string{`azblob: key "name"`}},
		{name: "gha scope", cache: []string{"type=gha,scope=main"}, want: []string{`"scope"`, "cache-scope"}},
		{name: "inline keys", cache: []string{"type=inline,ref=a/b"}, want: []string{"inline", `"ref"`}},
		{name: "inline max", cache: []string{"type=inline,mode=max"}, opts: Options{HasImageOutput: true}, want: []string{"mode=min only"}},
		{name: "inline without image output", cache: []string{"type=inline"}, want: []string{`input "cache" line 1`, "image output"}},
		{name: "unknown key", cache: []string{"type=gha,colour=red"}, is: cacheentry.ErrUnknownKey, want: []string{`"colour"`, "allowed"}},
		{name: "compression on gha", cache: []string{"type=gha,compression=zstd"}, is: cacheentry.ErrUnsupported, want: []string{"gha", "compression"}},
		{name: "bad value", cache: []string{"type=registry,ref=a/b,compression=lz4"}, is: cacheentry.ErrInvalidValue, want: []string{"uncompressed|gzip|estargz|zstd"}},
		{name: "level without compression", cache: []string{"type=registry,ref=a/b,compression-level=3"}, want: []string{"needs compression="}},
		{name: "unknown type", cache: []string{"type=redis"}, is: cacheentry.ErrUnknownType, want: []string{"inline|registry|local|gha|s3|azblob"}},
		{name: "duplicate gha", cache: []string{"type=gha", "type=gha,mode=min"}, is: cacheentry.ErrConflict, want: []string{`input "cache" line 1 and input "cache" line 2`, "gha scope buildkit"}},
		{name: "cache line and cache-to collide", cache: []string{"type=registry,ref=ghcr.io/o/c"}, to: []string{"type=registry,ref=ghcr.io/o/c:buildkit_main"},
			is: cacheentry.ErrConflict, want: []string{`input "cache" line 1 and input "cache-to" line 1`}},
		{name: "bad cache-from", from: []string{"type=gha", "type=registry,ref=a/b,mode=max"}, want: []string{`input "cache-from" line 2`, `"mode"`}},
		{name: "bad cache-to", to: []string{"type=s3,bucket=b"}, want: []string{`input "cache-to" line 1`, "region"}},
		{name: "no default dir", is: ErrCacheLine, want: []string{"no cache configured"}},
		{name: "secret not echoed", cache: []string{"type=s3,bucket=b,region=r,secret_access_key=TOPSECRET,colour=x"}, want: []string{"colour"}},
		{name: "bad inline tag", cache: []string{"type=inline"}, opts: Options{Tags: []string{"Not A Tag"}, HasImageOutput: true}, want: []string{"inline: tag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := tt.sp
			if sp.Build == "" {
				sp = pushMain
			}
			_, err := Expand(tt.cache, tt.from, tt.to, sp, tt.opts)
			if err == nil {
				t.Fatal("Expand succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	p, err := Expand([]string{"type=gha,token=RUNTIMETOKEN", "type=registry,ref=ghcr.io/o/c"}, nil, nil, pr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Describe()
	for _, want := range []string{
		`build "app" (trusted)`,
		"export scope app_pr-42 (this PR)",
		"import scope app_pr-42 (this PR)",
		"import scope app_main (PR base)",
		"cache-from:\n  type=gha,scope=app\n  type=registry,ref=ghcr.io/o/c:app_pr-42\n  type=registry,ref=ghcr.io/o/c:app_main\n",
		"cache-to:\n  type=gha,scope=app,ignore-error=true,mode=max\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe() lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got+p.CacheFrom()+p.CacheTo(), "RUNTIMETOKEN") {
		t.Error("token leaked")
	}
	fork := forkPR
	fork.Notes = []string{"fork pull request: read-only"}
	ro, err := Expand([]string{"type=gha"}, nil, nil, fork, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ro.Describe(); !strings.Contains(got, "export scope: none (read-only)") || !strings.Contains(got, "cache-to: none") ||
		!strings.Contains(got, "(untrusted)") || !strings.Contains(got, "  note: fork pull request: read-only\n") {
		t.Errorf("read-only Describe():\n%s", got)
	}
}

func TestNotes(t *testing.T) {
	p, err := Expand(nil, nil, nil, pushMain, Options{GitHubRuntime: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "type=gha") {
		t.Errorf("Notes = %q", p.Notes)
	}
	p, err = Expand([]string{"type=inline"}, nil, nil, pushMain, Options{HasImageOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "no tags") {
		t.Errorf("Notes = %q", p.Notes)
	}
}
