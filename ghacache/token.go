package ghacache

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// TokenScope is one cache scope (a ref) of the runtime token's `ac` claim.
type TokenScope struct {
	Ref   string
	Write bool
}

// Permission bits of the `ac` claim (go-actions-cache PermissionRead/Write).
const (
	permRead  = 1
	permWrite = 2
)

// TokenScopes reads the cache scopes of a runtime token, in the token's
// order (the writable ref first on GitHub), the way BuildKit's gha backend
// does (go-actions-cache New): the claims are read, not verified; the
// service verifies them. BuildKit reads one index per readable scope.
func TokenScopes(token string) ([]TokenScope, error) {
	var claims struct {
		AC string `json:"ac"`
		jwt.RegisteredClaims
	}
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		return nil, fmt.Errorf("runtime token: %w", errors.New("not a JWT"))
	}
	if claims.AC == "" {
		return nil, errors.New("runtime token: no access controls (ac claim)")
	}
	var acs []struct {
		Scope      string `json:"Scope"`
		Permission int    `json:"Permission"`
	}
	if err := json.Unmarshal([]byte(claims.AC), &acs); err != nil {
		return nil, fmt.Errorf("runtime token: ac claim: %w", err)
	}
	var out []TokenScope
	for _, a := range acs {
		if a.Permission&permRead == 0 && a.Permission&permWrite == 0 {
			continue
		}
		out = append(out, TokenScope{Ref: a.Scope, Write: a.Permission&permWrite != 0})
	}
	return out, nil
}

// Scopes returns the client token's cache scopes (see TokenScopes).
func (c *Client) Scopes() ([]TokenScope, error) { return TokenScopes(c.cfg.Token) }
