package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	// golang-jwt is already in BuildKit's module graph (go-actions-cache
	// parses runtime tokens with it); it does HS256 and the time checks.
	"github.com/golang-jwt/jwt/v5"
)

// Permission bits of a cache scope, as in the `ac` claim of GitHub's
// runtime token and in go-actions-cache (PermissionRead = 1,
// PermissionWrite = 2).
const (
	PermRead  = 1
	PermWrite = 2
)

// Scope is one element of the `ac` claim. The field names are GitHub's
// (capitalised), which go-actions-cache decodes.
type Scope struct {
	Scope      string `json:"Scope"`
	Permission int    `json:"Permission"`
}

// TokenOptions describes a runtime token.
type TokenOptions struct {
	Repo  string   // owner/name; entries are kept per repository
	Write string   // the one ref the job may write, e.g. refs/pull/1/merge; may be empty
	Read  []string // further refs it may read, e.g. the base and default branch
	TTL   time.Duration
	Now   time.Time // issue time; zero means time.Now()
}

const tokenIssuer = "gha-cache-emulator"

// DefaultTokenTTL is how long minted tokens live unless told otherwise;
// GitHub's runtime tokens last about as long as the longest job.
const DefaultTokenTTL = 6 * time.Hour

type runtimeClaims struct {
	AC         string `json:"ac"`
	Repository string `json:"repository"`
	jwt.RegisteredClaims
}

// Identity is what a verified runtime token grants.
type Identity struct {
	Repo   string
	Scopes []Scope
}

// Writable returns the scope writes go to, or "".
func (id Identity) Writable() string {
	for _, s := range id.Scopes {
		if s.Permission&PermWrite != 0 {
			return s.Scope
		}
	}
	return ""
}

// Readable returns the scopes reads search, in GitHub's order: the
// writable (current) ref first, then the others as listed.
func (id Identity) Readable() []string {
	var first, rest []string
	for _, s := range id.Scopes {
		if s.Permission&PermRead == 0 {
			continue
		}
		if s.Permission&PermWrite != 0 {
			first = append(first, s.Scope)
		} else {
			rest = append(rest, s.Scope)
		}
	}
	return append(first, rest...)
}

// MintToken signs a runtime token with secret (HS256).
func MintToken(secret []byte, o TokenOptions) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("minting token: empty secret")
	}
	if err := checkRepo(o.Repo); err != nil {
		return "", fmt.Errorf("minting token: %w", err)
	}
	var scopes []Scope
	if o.Write != "" {
		if err := checkRef(o.Write); err != nil {
			return "", fmt.Errorf("minting token: write ref: %w", err)
		}
		scopes = append(scopes, Scope{Scope: o.Write, Permission: PermRead | PermWrite})
	}
	seen := map[string]bool{o.Write: true}
	for _, r := range o.Read {
		if err := checkRef(r); err != nil {
			return "", fmt.Errorf("minting token: read ref: %w", err)
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		scopes = append(scopes, Scope{Scope: r, Permission: PermRead})
	}
	if len(scopes) == 0 {
		return "", errors.New("minting token: no scopes; give a write ref or read refs")
	}
	ac, err := json.Marshal(scopes)
	if err != nil {
		return "", err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 {
		return "", fmt.Errorf("minting token: negative ttl %v", ttl)
	}
	c := runtimeClaims{
		AC:         string(ac),
		Repository: o.Repo,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Audience:  jwt.ClaimStrings{"actions-cache"},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("minting token: %w", err)
	}
	return s, nil
}

// errUnauthenticated marks token failures; the message never holds the token.
var errUnauthenticated = errors.New("unauthenticated")

// verifyToken checks signature, algorithm, issuer and times, and decodes
// the `ac` claim.
func verifyToken(secret []byte, raw string, now func() time.Time) (Identity, error) {
	var c runtimeClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now),
	)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: invalid runtime token: %w", errUnauthenticated, err)
	}
	if checkRepo(c.Repository) != nil {
		return Identity{}, fmt.Errorf("%w: runtime token without repository", errUnauthenticated)
	}
	var scopes []Scope
	if err := json.Unmarshal([]byte(c.AC), &scopes); err != nil {
		return Identity{}, fmt.Errorf("%w: runtime token access controls: %w", errUnauthenticated, err)
	}
	return Identity{Repo: c.Repository, Scopes: scopes}, nil
}

func checkRepo(repo string) error {
	o, n, ok := strings.Cut(repo, "/")
	if !ok || o == "" || n == "" || strings.Contains(n, "/") {
		return fmt.Errorf("repository %q is not owner/name", repo)
	}
	return nil
}

func checkRef(ref string) error {
	if !strings.HasPrefix(ref, "refs/") || strings.ContainsAny(ref, " \t\n") {
		return fmt.Errorf("ref %q must be a full ref such as refs/heads/main or refs/pull/1/merge", ref)
	}
	return nil
}
