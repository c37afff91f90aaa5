package runnerenv

// EmptyWriteScope reports whether the runtime token's `ac` claim grants
// write access to a scope whose ref is empty, as a hand-made token for a
// third-party runner may. WritableRef gives "" for it, as for a token
// that may write nothing; messages must tell the two apart.
func EmptyWriteScope(token string) bool {
	scopes, _ := TokenScopes(token)
	for _, s := range scopes {
		if s.Write && s.Ref == "" {
			return true
		}
	}
	return false
}
