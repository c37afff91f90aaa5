package cacheentry

import (
	"errors"
	"strings"
	"testing"
)

func mustParse(t *testing.T, in string, dir Direction) Entry {
	t.Helper()
	e, err := Parse(in, dir)
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	return e
}

func TestValidateSet(t *testing.T) {
	tests := []struct {
		name     string
		imports  []string
		exports  []string
		hasImage bool
		want     string // "" = valid
	}{
		{"multiple imports and exports", []string{"type=gha", "type=registry,ref=a/b:main", "type=registry,ref=a/b:pr-1"},
			[]string{"type=gha,scope=x", "type=registry,ref=a/b:pr-1", "type=local,dest=/c"}, false, ""},
		{"inline with image", nil, []string{"type=inline"}, true, ""},
		{"inline without image", nil, []string{"type=inline"}, false, "without an image output"},
		{"two inline", nil, []string{"type=inline", "type=inline,mode=min"}, true, "entries 1 and 2"},
		{"same registry ref", nil, []string{"type=registry,ref=a/b", "type=registry,ref=docker.io/a/b:latest,mode=min"}, false, "registry ref docker.io/a/b:latest"},
		{"different tags", nil, []string{"type=registry,ref=a/b:x", "type=registry,ref=a/b:y"}, false, ""},
		{"same local dest", nil, []string{"type=local,dest=/c/x", "type=local,dest=/c/x/,tag=other"}, false, "local dest /c/x"},
		{"gha default scope twice", nil, []string{"type=gha", "type=gha,scope=buildkit"}, false, `gha scope buildkit`},
		{"gha distinct scopes", nil, []string{"type=gha,scope=a", "type=gha,scope=b"}, false, ""},
		{"s3 same name", nil, []string{"type=s3,bucket=b,region=r,name=x;y", "type=s3,bucket=b,region=r2,name=y"}, false, `name "y"`},
		{"s3 other prefix", nil, []string{"type=s3,bucket=b,region=r,name=x", "type=s3,bucket=b,region=r,name=x,prefix=p/"}, false, ""},
		{"azblob same default name", nil, []string{"type=azblob,account_url=https://a.blob/?sig=SECRET", "type=azblob,account_url=https://a.blob/"}, false, `name "buildkit"`},
		{"azblob other container", nil, []string{"type=azblob,account_url=https://a.blob/", "type=azblob,account_url=https://a.blob/,container=c2"}, false, ""},
		{"invalid import", []string{"type=inline"}, nil, true, "cache-from entry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var im, ex []Entry
			for _, s := range tt.imports {
				// Build directly: ValidateSet itself must catch invalid entries.
				e, err := Parse(s, Import)
				if err != nil {
					e, _ = Parse(s, Export)
				}
				im = append(im, e)
			}
			for _, s := range tt.exports {
				ex = append(ex, mustParse(t, s, Export))
			}
			err := ValidateSet(im, ex, tt.hasImage)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidateSet: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("ValidateSet succeeded, want error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("ValidateSet error %q lacks %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestValidateSetConflictIs(t *testing.T) {
	e := mustParse(t, "type=gha", Export)
	if err := ValidateSet(nil, []Entry{e, e}, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}
