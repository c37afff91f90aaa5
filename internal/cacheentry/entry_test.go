package cacheentry

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func attrs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		dir  Direction
		want Entry
	}{
		{"registry short form", "user/app:cache", Import, Entry{"registry", attrs("ref", "user/app:cache")}},
		{"registry import", "type=registry,ref=ghcr.io/o/app:main", Import, Entry{"registry", attrs("ref", "ghcr.io/o/app:main")}},
		{"registry import insecure", "type=registry,ref=localhost:5000/app:x,registry.insecure=true", Import,
			Entry{"registry", attrs("ref", "localhost:5000/app:x", "registry.insecure", "true")}},
		{"registry export all options", "type=registry,ref=r.io/a/b:c,mode=max,image-manifest=true,oci-mediatypes=true,compression=zstd,compression-level=22,force-compression=true,ignore-error=false,registry.insecure=1", Export,
			Entry{"registry", attrs("ref", "r.io/a/b:c", "mode", "max", "image-manifest", "true", "oci-mediatypes", "true",
				"compression", "zstd", "compression-level", "22", "force-compression", "true", "ignore-error", "false", "registry.insecure", "1")}},
		{"registry docker mediatypes", "type=registry,ref=a/b,oci-mediatypes=false", Export, Entry{"registry", attrs("ref", "a/b", "oci-mediatypes", "false")}},
		{"registry oci false image-manifest false", "type=registry,ref=a/b,oci-mediatypes=false,image-manifest=false", Export,
			Entry{"registry", attrs("ref", "a/b", "oci-mediatypes", "false", "image-manifest", "false")}},
		{"gzip level 0", "type=registry,ref=a/b,compression=gzip,compression-level=0", Export, Entry{"registry", attrs("ref", "a/b", "compression", "gzip", "compression-level", "0")}},
		{"estargz level 9", "type=registry,ref=a/b,compression=estargz,compression-level=9", Export, Entry{"registry", attrs("ref", "a/b", "compression", "estargz", "compression-level", "9")}},
		{"uncompressed", "type=local,dest=/c,compression=uncompressed", Export, Entry{"local", attrs("dest", "/c", "compression", "uncompressed")}},
		{"keys lower-cased, spaces around keys", "type=registry, REF=a/b:c, Mode=min", Export, Entry{"registry", attrs("ref", "a/b:c", "mode", "min")}},
		{"local import", "type=local,src=/tmp/c,tag=main,digest=sha256:abcd", Import, Entry{"local", attrs("src", "/tmp/c", "tag", "main", "digest", "sha256:abcd")}},
		{"gha through the cache endpoint", "type=gha,dataplane=endpoint", Export, Entry{"gha", attrs("dataplane", "endpoint")}},
		{"local export", "type=local,dest=/tmp/c,tag=main,reset=true,mode=max,image-manifest=false,oci-mediatypes=true,compression=gzip,compression-level=5,force-compression=false,ignore-error=true", Export,
			Entry{"local", attrs("dest", "/tmp/c", "tag", "main", "reset", "true", "mode", "max", "image-manifest", "false", "oci-mediatypes", "true",
				"compression", "gzip", "compression-level", "5", "force-compression", "false", "ignore-error", "true")}},
		{"gha bare", "type=gha", Import, Entry{"gha", attrs()}},
		{"gha all", "type=gha,scope=app,timeout=5m,token=t0k3n,url=https://a.example/,url_v2=https://b.example/,repository=o/r,ghtoken=gh,version=2,mode=max,ignore-error=true", Export,
			Entry{"gha", attrs("scope", "app", "timeout", "5m", "token", "t0k3n", "url", "https://a.example/", "url_v2", "https://b.example/",
				"repository", "o/r", "ghtoken", "gh", "version", "2", "mode", "max", "ignore-error", "true")}},
		{"s3 import", "type=s3,bucket=b,region=r,name=n,prefix=p/,blobs_prefix=bl/,manifests_prefix=m/,endpoint_url=http://127.0.0.1:7070,use_path_style=true,access_key_id=AK,secret_access_key=SK,session_token=ST,disable_accept_encoding=true,retry_mode=adaptive,retry_max_attempts=5", Import,
			Entry{"s3", attrs("bucket", "b", "region", "r", "name", "n", "prefix", "p/", "blobs_prefix", "bl/", "manifests_prefix", "m/",
				"endpoint_url", "http://127.0.0.1:7070", "use_path_style", "true", "access_key_id", "AK", "secret_access_key", "SK",
				"session_token", "ST", "disable_accept_encoding", "true", "retry_mode", "adaptive", "retry_max_attempts", "5")}},
		{"s3 export", "type=s3,bucket=b,region=r,touch_refresh=1h,upload_parallelism=8,compression=zstd,compression-level=3,force-compression=true,mode=min,ignore-error=false", Export,
			Entry{"s3", attrs("bucket", "b", "region", "r", "touch_refresh", "1h", "upload_parallelism", "8", "compression", "zstd",
				"compression-level", "3", "force-compression", "true", "mode", "min", "ignore-error", "false")}},
		{"azblob import", "type=azblob,account_url=http://127.0.0.1:10000/devstoreaccount1,account_name=devstoreaccount1,container=c,prefix=p,blobs_prefix=b,manifests_prefix=m,name=n,secret_access_key=K", Import,
			Entry{"azblob", attrs("account_url", "http://127.0.0.1:10000/devstoreaccount1", "account_name", "devstoreaccount1", "container", "c",
				"prefix", "p", "blobs_prefix", "b", "manifests_prefix", "m", "name", "n", "secret_access_key", "K")}},
		{"azblob export", "type=azblob,account_url=https://acct.blob.core.windows.net?sv=1&sig=abc,mode=max,ignore-error=true", Export,
			Entry{"azblob", attrs("account_url", "https://acct.blob.core.windows.net?sv=1&sig=abc", "mode", "max", "ignore-error", "true")}},
		{"inline", "type=inline", Export, Entry{"inline", attrs()}},
		{"inline min", "type=inline,mode=min,ignore-error=true", Export, Entry{"inline", attrs("mode", "min", "ignore-error", "true")}},
		{"quoted field with comma", `type=s3,bucket=b,region=r,"name=a,b"`, Import, Entry{"s3", attrs("bucket", "b", "region", "r", "name", "a,b")}},
		{"trailing newline", "type=gha\n", Import, Entry{"gha", attrs()}},
		{"spaces inside a quoted value kept", `type=gha,"scope= a b"`, Import, Entry{"gha", attrs("scope", " a b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, tt.dir)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			again, err := Parse(got.String(), tt.dir)
			if err != nil || !again.Equal(got) {
				t.Fatalf("round trip of %q via %q: %#v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		dir  Direction
		is   error
		want []string // substrings of the message
	}{
		{"empty", "  ", Import, ErrSyntax, []string{"empty"}},
		{"newline in value", "type=gha,\"scope=a\nb\"", Import, ErrInvalidValue, []string{"control character"}},
		{"bad csv", `type=gha,"scope=a`, Import, ErrSyntax, []string{"invalid syntax"}},
		{"no type", "ref=a/b", Import, ErrSyntax, []string{"missing type=inline|registry|local|gha|s3|azblob"}},
		{"unknown type", "type=redis", Import, ErrUnknownType, []string{`"redis"`, "inline|registry|local|gha|s3|azblob"}},
		{"not key=value", "type=gha,scope", Import, ErrSyntax, []string{"field 2 is not key=value"}},
		{"empty key", "type=gha,=x", Import, ErrSyntax, []string{"empty key"}},
		{"repeated key", "type=gha,scope=a,Scope=b", Import, ErrSyntax, []string{`"scope" given twice`}},
		{"repeated type", "type=gha,type=s3", Import, ErrSyntax, []string{`"type" given twice`}},
		{"several short refs", "a/b:c,d/e:f", Import, ErrSyntax, []string{"one entry per line"}},
		{"unknown key", "type=s3,bucket=b,region=r,colour=blue", Import, ErrUnknownKey,
			[]string{`s3: unknown key "colour"`, "allowed in cache-from:", "bucket", "region", "name"}},
		{"mode on import", "type=registry,ref=a/b,mode=max", Import, ErrUnsupported, []string{`"mode"`, "cache-from", "only in cache-to"}},
		{"ignore-error on import", "type=gha,ignore-error=true", Import, ErrUnsupported, []string{`"ignore-error"`}},
		{"dataplane neither boolean nor endpoint", "type=gha,dataplane=maybe", Import, ErrInvalidValue, []string{`"maybe"`, "true|false|endpoint"}},
		{"dest on import", "type=local,src=/a,dest=/b", Import, ErrUnsupported, []string{`"dest"`}},
		{"src on export", "type=local,dest=/a,src=/b", Export, ErrUnsupported, []string{`"src"`}},
		{"digest on export", "type=local,dest=/a,digest=sha256:ab", Export, ErrUnsupported, []string{`"digest"`}},
		{"compression on gha", "type=gha,compression=zstd", Export, ErrUnsupported, []string{`gha: key "compression"`, "BuildKit ignores it for gha", "registry, local, s3"}},
		{"compression on azblob", "type=azblob,account_url=https://a.b,compression=zstd", Export, ErrUnsupported, []string{"azblob"}},
		{"compression on inline", "type=inline,compression=gzip", Export, ErrUnsupported, []string{"inline"}},
		{"oci-mediatypes on s3", "type=s3,bucket=b,region=r,oci-mediatypes=true", Export, ErrUnsupported, []string{`s3: key "oci-mediatypes"`, "registry, local"}},
		{"image-manifest on gha", "type=gha,image-manifest=true", Export, ErrUnsupported, []string{"gha", "image-manifest"}},
		{"force-compression on azblob", "type=azblob,account_url=https://a.b,force-compression=true", Export, ErrUnsupported, []string{"azblob"}},
		{"bad mode", "type=registry,ref=a/b,mode=all", Export, ErrInvalidValue, []string{`"mode"`, `"all"`, "min|max"}},
		{"bad bool", "type=registry,ref=a/b,ignore-error=yes", Export, ErrInvalidValue, []string{`"ignore-error"`, "true|false"}},
		{"bad oci bool", "type=local,dest=/a,oci-mediatypes=maybe", Export, ErrInvalidValue, []string{`"oci-mediatypes"`, "true|false"}},
		{"bad compression", "type=registry,ref=a/b,compression=lz4", Export, ErrInvalidValue, []string{"uncompressed|gzip|estargz|zstd"}},
		{"level without compression", "type=registry,ref=a/b,compression-level=3", Export, nil, []string{"needs compression=gzip|estargz|zstd"}},
		{"level with uncompressed", "type=registry,ref=a/b,compression=uncompressed,compression-level=3", Export, nil, []string{"does not apply to compression=uncompressed"}},
		{"gzip level 10", "type=registry,ref=a/b,compression=gzip,compression-level=10", Export, ErrInvalidValue, []string{"0-9"}},
		{"estargz level -1", "type=local,dest=/a,compression=estargz,compression-level=-1", Export, ErrInvalidValue, []string{"0-9"}},
		{"zstd level 23", "type=s3,bucket=b,region=r,compression=zstd,compression-level=23", Export, ErrInvalidValue, []string{"0-22"}},
		{"level not int", "type=registry,ref=a/b,compression=zstd,compression-level=high", Export, ErrInvalidValue, []string{"integer"}},
		{"image-manifest needs oci", "type=registry,ref=a/b,image-manifest=true,oci-mediatypes=false", Export, nil, []string{"image-manifest=true needs oci-mediatypes=true"}},
		{"registry missing ref", "type=registry,mode=max", Export, ErrMissingKey, []string{`missing required key "ref"`, "registry needs ref"}},
		{"registry bad ref", "type=registry,ref=UPPER/Case", Import, ErrInvalidValue, []string{`"ref"`}},
		{"local import missing src", "type=local,tag=x", Import, ErrMissingKey, []string{`"src"`, "local cache-from needs src"}},
		{"local export missing dest", "type=local", Export, ErrMissingKey, []string{`"dest"`}},
		{"local bad digest", "type=local,src=/a,digest=abc", Import, ErrInvalidValue, []string{"sha256"}},
		{"s3 missing region", "type=s3,bucket=b", Export, ErrMissingKey, []string{`"region"`, "s3 needs bucket, region"}},
		{"s3 missing bucket", "type=s3,region=r", Import, ErrMissingKey, []string{`"bucket"`}},
		{"s3 bad parallelism", "type=s3,bucket=b,region=r,upload_parallelism=0", Export, ErrInvalidValue, []string{"positive"}},
		{"s3 parallelism on import", "type=s3,bucket=b,region=r,upload_parallelism=2", Import, ErrUnsupported, []string{"upload_parallelism"}},
		{"s3 bad touch", "type=s3,bucket=b,region=r,touch_refresh=daily", Export, ErrInvalidValue, []string{"duration"}},
		{"s3 bad retry mode", "type=s3,bucket=b,region=r,retry_mode=never", Import, ErrInvalidValue, []string{"standard|adaptive"}},
		{"s3 bad endpoint", "type=s3,bucket=b,region=r,endpoint_url=localhost:9000", Import, ErrInvalidValue, []string{"http(s) URL"}},
		{"azblob missing url", "type=azblob,name=n", Import, ErrMissingKey, []string{`"account_url"`}},
		{"gha bad timeout", "type=gha,timeout=forever", Import, ErrInvalidValue, []string{"duration"}},
		{"gha bad version", "type=gha,version=3", Import, ErrInvalidValue, []string{"1|2"}},
		{"inline import", "type=inline", Import, ErrUnsupported, []string{"no inline importer", "type=registry"}},
		{"inline max", "type=inline,mode=max", Export, ErrInvalidValue, []string{"mode=min only"}},
		{"inline unknown key", "type=inline,ref=a/b", Export, ErrUnsupported, []string{`inline: key "ref"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in, tt.dir)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tt.in)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestErrorsHideSecrets(t *testing.T) {
	for _, in := range []string{
		"type=gha,token=SECRETTOKEN,colour=x",
		"type=s3,secret_access_key=SECRETTOKEN,bucket=b",
		"type=azblob,account_url=https://a.blob.core.windows.net/?sig=SECRETTOKEN,compression=gzip",
		"type=azblob,account_url=ftp://a/?sig=SECRETTOKEN",
		"type=gha,url=notaurl?SECRETTOKEN",
	} {
		_, err := Parse(in, Export)
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", in)
		}
		if strings.Contains(err.Error(), "SECRETTOKEN") {
			t.Errorf("error for %q leaks the secret: %v", in, err)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{"gha", nil}, "type=gha"},
		{Entry{"registry", attrs("ref", "a/b:c", "mode", "max", "ignore-error", "true")}, "type=registry,ref=a/b:c,ignore-error=true,mode=max"},
		{Entry{"s3", attrs("bucket", "b", "region", "r", "name", `a,"b"`)}, `type=s3,bucket=b,"name=a,""b""",region=r`},
		{Entry{"local", attrs("dest", "/x ")}, `type=local,"dest=/x "`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.e.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	e := Entry{"s3", attrs("bucket", "b", "region", "r", "access_key_id", "AKIAXXXX", "secret_access_key", "sk/123",
		"session_token", "st", "endpoint_url", "https://user:pw@s3.example/base?X-Amz-Signature=zzz")}
	got := e.Redacted()
	for _, leak := range []string{"AKIAXXXX", "sk/123", "st,", "pw@", "zzz", "X-Amz-Signature"} {
		if strings.Contains(got, leak) {
			t.Errorf("Redacted() = %q leaks %q", got, leak)
		}
	}
	for _, keep := range []string{"bucket=b", "region=r", "access_key_id=***", "secret_access_key=***", "session_token=***", "s3.example/base"} {
		if !strings.Contains(got, keep) {
			t.Errorf("Redacted() = %q lacks %q", got, keep)
		}
	}
	gha := Entry{"gha", attrs("token", "tok", "ghtoken", "ght", "scope", "s")}
	if got, want := gha.Redacted(), "type=gha,scope=s,ghtoken=***,token=***"; got != want {
		t.Errorf("Redacted() = %q, want %q", got, want)
	}
	az := Entry{"azblob", attrs("account_url", "https://acct.blob.core.windows.net/?sv=2022&sig=SIG")}
	if got := az.Redacted(); strings.Contains(got, "SIG") || !strings.Contains(got, "acct.blob.core.windows.net") {
		t.Errorf("Redacted() = %q", got)
	}
}

func TestSecrets(t *testing.T) {
	e := Entry{"azblob", attrs("account_url", "https://u:pass@acct.blob/?sig=SIG", "secret_access_key", "KEY", "name", "n")}
	got := strings.Join(e.Secrets(), " ")
	for _, want := range []string{"sig=SIG", "pass", "KEY"} {
		if !strings.Contains(got, want) {
			t.Errorf("Secrets() = %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "n ") || strings.HasSuffix(got, " n") {
		t.Errorf("Secrets() = %q includes a non-secret", got)
	}
	if !IsSecretKey("token") || IsSecretKey("scope") {
		t.Error("IsSecretKey wrong")
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Entry
		dir  Direction
		want Entry
	}{
		{"export", Entry{"registry", attrs("ref", "a/b")}, Export, Entry{"registry", attrs("ref", "a/b", "mode", "max", "ignore-error", "true")}},
		{"user values kept", Entry{"gha", attrs("mode", "min", "ignore-error", "false")}, Export, Entry{"gha", attrs("mode", "min", "ignore-error", "false")}},
		{"inline", Entry{"inline", nil}, Export, Entry{"inline", attrs("mode", "min", "ignore-error", "true")}},
		{"import unchanged", Entry{"gha", nil}, Import, Entry{"gha", attrs()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.in.Clone()
			got := WithDefaults(tt.in, tt.dir)
			if !got.Equal(tt.want) {
				t.Errorf("WithDefaults = %#v, want %#v", got, tt.want)
			}
			if !tt.in.Equal(orig) {
				t.Error("WithDefaults modified its argument")
			}
			if err := got.Validate(tt.dir); err != nil {
				t.Errorf("defaults do not validate: %v", err)
			}
		})
	}
}

func TestCheckRepository(t *testing.T) {
	for _, ok := range []string{"ghcr.io/o/app-cache", "user/app", "localhost:5000/x/y"} {
		if err := CheckRepository(ok); err != nil {
			t.Errorf("CheckRepository(%q): %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"ghcr.io/o/app:main":                              "without a tag",
		"ghcr.io/o/app@sha256:" + strings.Repeat("a", 64): "without a digest",
		"Bad Ref": "want a repository",
	} {
		err := CheckRepository(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRepository(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestAllowedKeysCoverBackends(t *testing.T) {
	for _, typ := range Types() {
		if len(AllowedKeys(typ, Export)) == 0 {
			t.Errorf("%s: no export keys", typ)
		}
	}
	if AllowedKeys("nope", Import) != nil {
		t.Error("unknown type has keys")
	}
	if !Allows("s3", "compression", Export) || Allows("s3", "compression", Import) || Allows("gha", "compression", Export) {
		t.Error("Allows wrong for compression")
	}
}

func TestParseLine(t *testing.T) {
	got, err := ParseLine("a/b:c,d/e:f", Import)
	if err != nil || len(got) != 2 || got[0].Attrs["ref"] != "a/b:c" || got[1].Attrs["ref"] != "d/e:f" {
		t.Fatalf("ParseLine short refs = %v, %v", got, err)
	}
	got, err = ParseLine("type=gha,scope=x", Import)
	if err != nil || len(got) != 1 || got[0].Attrs["scope"] != "x" {
		t.Fatalf("ParseLine = %v, %v", got, err)
	}
	if _, err := ParseLine("a/b:c,type=gha", Import); err == nil {
		t.Fatal("ParseLine accepted a mixed line")
	}
	if _, err := ParseLine("a/b:c,Bad Ref", Import); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("ParseLine bad ref: %v", err)
	}
}

// buildkitShaped stands for BuildKit's client.CacheOptionsEntry, which this
// package does not import.
type buildkitShaped struct {
	Type  string
	Attrs map[string]string
}

func TestSecretsOfLists(t *testing.T) {
	got := Secrets(
		[]buildkitShaped{{Type: "s3", Attrs: map[string]string{"bucket": "b", "secret_access_key": "KEYVALUE"}}},
		[]buildkitShaped{{Type: "registry", Attrs: map[string]string{"ref": "r"}}},
		[]buildkitShaped{{Type: "gha", Attrs: map[string]string{"token": "TOKEN", "url": "https://u/?sig=SIG"}}},
	)
	if want := []string{"KEYVALUE", "TOKEN", "sig=SIG"}; !slices.Equal(got, want) {
		t.Errorf("Secrets = %q, want %q", got, want)
	}
	if got := Secrets[Entry](); got != nil {
		t.Errorf("Secrets of nothing = %q", got)
	}
}
