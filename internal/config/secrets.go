package config

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	// go-csvvalue is buildx's splitter for --secret (util/buildflags/secrets.go).
	"github.com/tonistiigi/go-csvvalue"
)

// Secret is one build secret, read by RUN --mount=type=secret,id=ID.
// Exactly one of Value, File and Env is set.
type Secret struct {
	ID    string
	Value string // the secret itself (KEY=VALUE in the secrets input)
	File  string // a file holding it
	Env   string // an environment variable holding it
}

// String names the secret and where it comes from, never its value.
func (s Secret) String() string {
	switch {
	case s.File != "":
		return fmt.Sprintf("secret %q from file %s", s.ID, s.File)
	case s.Env != "":
		return fmt.Sprintf("secret %q from $%s", s.ID, s.Env)
	}
	return fmt.Sprintf("secret %q (value given inline)", s.ID)
}

// GoString keeps %#v from printing the value either.
func (s Secret) GoString() string { return s.String() }

// record is one item of a list input and the input line it starts on.
type record struct {
	line int
	text string
}

// records splits a list input the way docker/build-push-action's
// getInputList does (@docker/actions-toolkit Util.getInputList, which runs
// csv-parse with relaxed quotes): CSV records, so a quoted item may hold
// commas and newlines (a multi-line secret is written "KEY=line1⏎line2").
// With commas, every field is an item; without, a record's fields are
// joined back with commas into one item. Lines starting with '#' are
// comments, as in the other list inputs. Errors never quote the input.
func records(name, input string, commas bool) ([]record, error) {
	r := csv.NewReader(strings.NewReader(input))
	r.LazyQuotes = true // csv-parse's relaxQuotes
	r.FieldsPerRecord = -1
	r.Comment = '#'
	var out []record
	for {
		fields, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("input %q line %d: %v", name, pe.StartLine, pe.Err)
			}
			return nil, fmt.Errorf("input %q: %v", name, err)
		}
		line, _ := r.FieldPos(0)
		if !commas {
			fields = []string{strings.Join(fields, ",")}
		}
		for _, f := range fields {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, record{line, f})
			}
		}
	}
}

// parseSecrets reads the secrets, secret-files and secret-envs inputs.
// Error messages name the input, the line and the key, never a value.
func parseSecrets(get func(string) string) ([]Secret, error) {
	var out []Secret
	where := map[string]string{}
	add := func(s Secret, name string, line int) error {
		at := fmt.Sprintf("input %q line %d", name, line)
		if first, dup := where[s.ID]; dup {
			return fmt.Errorf("%s: key %q is already given at %s", at, s.ID, first)
		}
		where[s.ID] = at
		out = append(out, s)
		return nil
	}
	recs, err := records(InputSecrets, get(InputSecrets), false)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		s, err := parseSecretItem(r.text)
		if err != nil {
			return nil, fmt.Errorf("input %q line %d: %w", InputSecrets, r.line, err)
		}
		if err := add(s, InputSecrets, r.line); err != nil {
			return nil, err
		}
	}
	for _, in := range []struct {
		name   string
		commas bool
		set    func(*Secret, string)
		what   string
	}{
		// build-push-action: secret-files ignores commas, secret-envs does not.
		{InputSecretFiles, false, func(s *Secret, v string) { s.File = v }, "KEY=PATH"},
		{InputSecretEnvs, true, func(s *Secret, v string) { s.Env = v }, "KEY=ENVNAME"},
	} {
		recs, err := records(in.name, get(in.name), in.commas)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			k, v, err := keyValue(r.text, in.what)
			if err != nil {
				return nil, fmt.Errorf("input %q line %d: %w", in.name, r.line, err)
			}
			s := Secret{ID: k}
			in.set(&s, strings.TrimSpace(v))
			if err := add(s, in.name, r.line); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// parseSecretItem reads one item of the secrets input: buildx's
// id=NAME,src=PATH / id=NAME,env=VAR when it has two or more fields and
// every one is one of buildx's keys, else build-push-action's KEY=VALUE
// (the value is everything after the first '='; "id=x" alone is a secret
// named "id").
func parseSecretItem(text string) (Secret, error) {
	if fields, ok := buildxFields(text); ok {
		return buildxSecret(fields)
	}
	k, v, err := keyValue(text, "KEY=VALUE, id=NAME,src=PATH or id=NAME,env=VAR")
	if err != nil {
		return Secret{}, err
	}
	return Secret{ID: k, Value: v}, nil
}

// buildxFields splits text as buildx does (go-csvvalue) and reports
// whether it is in buildx's --secret syntax.
func buildxFields(text string) ([][2]string, bool) {
	fields, err := csvvalue.Fields(text, nil)
	if err != nil || len(fields) < 2 {
		return nil, false
	}
	var out [][2]string
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch {
		case !ok:
			return nil, false
		case k == "type", k == "id", k == "src", k == "source", k == "env":
			out = append(out, [2]string{k, v})
		default:
			return nil, false
		}
	}
	return out, true
}

// buildxSecret reads buildx's fields as buildx does
// (util/buildflags/secrets.go). Errors name the id at most.
func buildxSecret(fields [][2]string) (Secret, error) {
	var s Secret
	typ := ""
	for _, f := range fields {
		switch k, v := f[0], f[1]; k {
		case "type":
			if v != "file" && v != "env" {
				return Secret{}, errors.New("id=NAME,src=PATH form: type must be file or env")
			}
			typ = v
		case "id":
			s.ID = v
		case "src", "source":
			s.File = v
		case "env":
			s.Env = v
		}
	}
	if typ == "env" && s.Env == "" {
		s.Env, s.File = s.File, ""
	}
	switch {
	case s.ID == "":
		return Secret{}, errors.New("id=NAME,src=PATH form: missing id")
	case s.File == "" && s.Env == "":
		return Secret{}, fmt.Errorf("id=NAME,src=PATH form: key %q: missing src or env", s.ID)
	case s.File != "" && s.Env != "":
		return Secret{}, fmt.Errorf("id=NAME,src=PATH form: key %q: src and env are exclusive", s.ID)
	}
	return s, nil
}

// keyValue splits KEY=VALUE; errors name the key at most.
func keyValue(text, want string) (key, value string, err error) {
	k, v, ok := strings.Cut(text, "=")
	k = strings.TrimSpace(k)
	switch {
	case !ok:
		return "", "", fmt.Errorf("want %s; the line has no '='", want)
	case k == "":
		return "", "", fmt.Errorf("want %s; the key is empty", want)
	case v == "":
		return "", "", fmt.Errorf("key %q: the value is empty", k)
	}
	return k, v, nil
}

// SecretInputValues returns what must be masked in the secrets input
// before anything prints, even when the inputs do not parse: every
// KEY=VALUE value, and every item that is not one (it may be a secret
// pasted alone). When the input is not even CSV, every line.
func SecretInputValues(get func(string) string) []string {
	input := get(InputSecrets)
	recs, err := records(InputSecrets, input, false)
	if err != nil {
		var out []string
		for _, l := range strings.Split(input, "\n") {
			out = append(out, strings.TrimSpace(l))
		}
		return out
	}
	var out []string
	for _, r := range recs {
		if fields, ok := buildxFields(r.text); ok {
			// Read as buildx's id=NAME,src=PATH, but it may have been
			// meant as build-push-action's KEY=VALUE (a secret named id,
			// src, env, type or source): mask that value, and each field,
			// since messages name the id or the path on their own.
			_, v, _ := strings.Cut(r.text, "=")
			out = append(out, v)
			for _, f := range fields {
				if f[0] != "type" {
					out = append(out, f[1])
				}
			}
			continue
		}
		s, err := parseSecretItem(r.text)
		switch {
		case err != nil:
			out = append(out, r.text)
		case s.Value != "":
			out = append(out, s.Value)
		}
	}
	return out
}
