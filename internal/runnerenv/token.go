package runnerenv

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Permission bits of a scope in the runtime token's `ac` claim
// (go-actions-cache: PermissionRead = 1, PermissionWrite = 2).
const (
	permRead  = 1
	permWrite = 2
)

// CacheScope is one element of the runtime token's `ac` claim: a ref the
// job's cache requests may read, and may write when Write is set.
type CacheScope struct {
	Ref   string
	Write bool
}

// TokenScopes reads the `ac` claim of an Actions runtime token (a JWT)
// without verifying the signature, as BuildKit's gha backend does
// (go-actions-cache New: ParseUnverified, then the claim is a JSON string
// holding [{"Scope":"refs/…","Permission":3}, …]). ok is false when the
// token is not a JWT or has no readable `ac` claim. It never returns or
// wraps the token itself, so nothing from it can reach a log.
//
// The JWT is split by hand rather than with golang-jwt: we only need the
// payload, and a three-line base64 decode keeps this package free of
// dependencies.
func TokenScopes(token string) (scopes []CacheScope, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var claims struct {
		AC *string `json:"ac"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.AC == nil {
		return nil, false
	}
	var ac []struct {
		Scope      string `json:"Scope"`
		Permission int    `json:"Permission"`
	}
	if err := json.Unmarshal([]byte(*claims.AC), &ac); err != nil {
		return nil, false
	}
	for _, s := range ac {
		if s.Permission&(permRead|permWrite) == 0 {
			continue
		}
		scopes = append(scopes, CacheScope{Ref: s.Scope, Write: s.Permission&permWrite != 0})
	}
	return scopes, true
}

// WritableRef is the ref a cache export with this runtime token writes:
// the scope of the `ac` claim with write permission, as BuildKit's gha
// exporter picks it (cache/remotecache/gha, exporter.indexKey). It is ""
// with a nil error when the token may write nothing.
//
// It fails closed: a token whose `ac` claim cannot be read (not a JWT,
// no claim, malformed) or that grants several distinct writable refs
// gives an error, and the caller writes nothing. Falling back to
// GITHUB_REF would guess which ref the service writes, and a wrong guess
// puts this build's cache where another ref reads it. The error never
// holds the token.
func WritableRef(token string) (string, error) {
	scopes, ok := TokenScopes(token)
	if !ok {
		return "", errors.New("the runtime token has no readable `ac` claim, so the ref the cache service would write cannot be told")
	}
	var refs []string
	for _, s := range scopes {
		if s.Write && !slices.Contains(refs, s.Ref) {
			refs = append(refs, s.Ref)
		}
	}
	switch len(refs) {
	case 0:
		return "", nil
	case 1:
		return refs[0], nil
	}
	return "", fmt.Errorf("the runtime token may write several refs (%s), so the ref the cache service would write cannot be told", strings.Join(refs, ", "))
}
