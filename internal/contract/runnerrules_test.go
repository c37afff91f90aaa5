package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The GitHub runner reads an action manifest as a template against the
// schema in testdata/runner/action_yaml.json (actions/runner
// src/Runner.Worker/action_yaml.json; ActionManifestManager.Load calls
// TemplateReader.Read with "action-root"). A manifest that breaks a rule
// fails at "Set up job", before any step runs, so reading action.yml as
// plain YAML proves nothing. The checker below applies the schema the way
// TemplateReader does (src/Sdk/WorkflowParser/ObjectTemplating/
// TemplateReader.cs), and ConvertRuns' checks on `runs`.

// templateSchema is the runner's schema: definitions by name.
type templateSchema struct {
	Definitions map[string]*templateDef `json:"definitions"`
}

// templateDef is one schema definition; exactly one of the kinds is set.
type templateDef struct {
	// Context lists the named values and functions ("hashFiles(1,255)")
	// an expression may use here; it adds to the parent's.
	Context []string `json:"context"`
	Mapping *struct {
		Properties     map[string]propertyDef `json:"properties"`
		LooseKeyType   string                 `json:"loose-key-type"`
		LooseValueType string                 `json:"loose-value-type"`
	} `json:"mapping"`
	Sequence *struct {
		ItemType string `json:"item-type"`
	} `json:"sequence"`
	String *struct {
		RequireNonEmpty bool   `json:"require-non-empty"`
		Constant        string `json:"constant"`
		IgnoreCase      bool   `json:"ignore-case"`
	} `json:"string"`
	Boolean *struct{} `json:"boolean"`
	Number  *struct{} `json:"number"`
	Null    *struct{} `json:"null"`
	OneOf   []string  `json:"one-of"`
}

// propertyDef is a property's type, written as "type" or {"type", "required"}.
type propertyDef struct {
	Type     string
	Required bool
}

func (p *propertyDef) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &p.Type); err == nil {
		return nil
	}
	var v struct {
		Type     string `json:"type"`
		Required bool   `json:"required"`
	}
	err := json.Unmarshal(b, &v)
	p.Type, p.Required = v.Type, v.Required
	return err
}

// loadRunnerSchema reads the vendored schema and adds the built-in types
// (TemplateSchema's constructor: null, boolean, number, string, sequence,
// mapping, and any as one-of them all, none with a context).
func loadRunnerSchema(t *testing.T) *templateSchema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "runner", "action_yaml.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s templateSchema
	if err := json.Unmarshal(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), &s); err != nil {
		t.Fatalf("action_yaml.json: %v", err)
	}
	if s.Definitions["action-root"] == nil {
		t.Fatal("action_yaml.json has no action-root definition")
	}
	var builtin templateSchema
	_ = json.Unmarshal([]byte(`{"definitions": {
		"null": {"null": {}}, "boolean": {"boolean": {}}, "number": {"number": {}}, "string": {"string": {}},
		"sequence": {"sequence": {"item-type": "any"}},
		"mapping": {"mapping": {"loose-key-type": "string", "loose-value-type": "any"}},
		"any": {"one-of": ["null", "boolean", "number", "string", "sequence", "mapping"]}}}`), &builtin)
	for k, d := range builtin.Definitions {
		s.Definitions[k] = d
	}
	// A newer schema with a kind of definition this checker does not know
	// must fail here rather than check less than the runner does.
	for name, d := range s.Definitions {
		kinds := 0
		for _, set := range []bool{d.Mapping != nil, d.Sequence != nil, d.String != nil, d.Boolean != nil, d.Number != nil, d.Null != nil, len(d.OneOf) > 0} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("action_yaml.json: definition %q has %d kinds this checker knows, want 1", name, kinds)
		}
	}
	return &s
}

// manifestChecker collects the errors of one manifest.
type manifestChecker struct {
	schema *templateSchema
	errs   []string
}

func (c *manifestChecker) errorf(n *yaml.Node, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("(Line: %d, Col: %d): %s", n.Line, n.Column, fmt.Sprintf(format, args...)))
}

// checkManifest returns what the runner would refuse in an action manifest.
func checkManifest(s *templateSchema, src []byte) []string {
	c := &manifestChecker{schema: s}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return []string{err.Error()}
	}
	if len(doc.Content) != 1 {
		return []string{"not one YAML document"}
	}
	root := doc.Content[0]
	c.read(root, "action-root", nil)
	c.checkRuns(root)
	return c.errs
}

// leaves expands one-of definitions (TemplateSchema.Get).
func (c *manifestChecker) leaves(name string) []*templateDef {
	d := c.schema.Definitions[name]
	if d == nil {
		panic("action_yaml.json: no definition " + name)
	}
	if len(d.OneOf) == 0 {
		return []*templateDef{d}
	}
	var out []*templateDef
	for _, n := range d.OneOf {
		out = append(out, c.leaves(n)...)
	}
	return out
}

// withContext is the allowed context inside definition name, under a
// parent allowing allowed (TemplateReader.DefinitionInfo).
func (c *manifestChecker) withContext(allowed []string, name string) []string {
	d := c.schema.Definitions[name]
	if d == nil || len(d.Context) == 0 {
		return allowed
	}
	out := slices.Clone(allowed)
	for _, x := range d.Context {
		if !slices.ContainsFunc(out, func(y string) bool { return strings.EqualFold(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}

// read is TemplateReader.ReadValue: n against definition name.
func (c *manifestChecker) read(n *yaml.Node, name string, parentAllowed []string) {
	allowed := c.withContext(parentAllowed, name)
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		// YamlObjectReader without allowAnchors, as ActionManifestManager makes it.
		c.errorf(n, "Anchors are not currently supported")
		return
	}
	defs := c.leaves(name)
	switch n.Kind {
	case yaml.ScalarNode:
		c.readScalar(n, defs, allowed)
	case yaml.SequenceNode:
		var seq *templateDef
		for _, d := range defs {
			if d.Sequence != nil {
				seq = d
				break
			}
		}
		if seq == nil {
			c.errorf(n, "A sequence was not expected")
			return
		}
		for _, item := range n.Content {
			c.read(item, seq.Sequence.ItemType, allowed)
		}
	case yaml.MappingNode:
		var maps []*templateDef
		for _, d := range defs {
			if d.Mapping != nil {
				maps = append(maps, d)
			}
		}
		if len(maps) == 0 {
			c.errorf(n, "A mapping was not expected")
			return
		}
		c.readMapping(n, maps, allowed)
	}
}

func (c *manifestChecker) readMapping(n *yaml.Node, maps []*templateDef, allowed []string) {
	first := maps[0].Mapping
	wellKnown := len(maps) > 1 || len(first.Properties) > 0 || first.LooseKeyType == ""
	seen := map[string]bool{}
	hasExpressionKey := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.errorf(k, "a mapping key must be a string")
			continue
		}
		if isExpression(c, k, allowed) {
			hasExpressionKey = true
			if len(allowed) > 0 {
				c.read(v, "any", allowed)
			}
			continue
		}
		if lk := strings.ToLower(k.Value); seen[lk] {
			c.errorf(k, "'%s' is already defined", k.Value)
			continue
		} else {
			seen[lk] = true
		}
		if !wellKnown {
			c.readScalar(k, c.leaves(first.LooseKeyType), nil)
			c.read(v, first.LooseValueType, allowed)
			continue
		}
		// TemplateSchema.TryMatchKey: the first definition that has the
		// key gives its type; definitions without it are ruled out.
		valueType := ""
		var still []*templateDef
		for _, d := range maps {
			if p, ok := d.Mapping.Properties[k.Value]; ok {
				if valueType == "" {
					valueType = p.Type
				}
				still = append(still, d)
			}
		}
		if valueType != "" {
			maps = still
			c.read(v, valueType, allowed)
			continue
		}
		if first.LooseKeyType != "" {
			c.readScalar(k, c.leaves(first.LooseKeyType), nil)
			c.read(v, first.LooseValueType, allowed)
			continue
		}
		c.errorf(k, "Unexpected value '%s'", k.Value)
	}
	if !wellKnown {
		return
	}
	if len(maps) > 1 {
		c.errorf(n, "There's not enough info to determine what you meant. Add one of these properties")
		return
	}
	if hasExpressionKey {
		return
	}
	for name, p := range maps[0].Mapping.Properties {
		if p.Required && !seen[strings.ToLower(name)] {
			c.errorf(n, "Required property is missing: %s", name)
		}
	}
}

// readScalar is ParseScalar then Validate: expressions only where the
// context allows one, literals matched against the scalar definitions,
// a non-string literal also as a string.
func (c *manifestChecker) readScalar(n *yaml.Node, defs []*templateDef, allowed []string) {
	if isExpression(c, n, allowed) {
		return
	}
	kind := scalarKind(n)
	for _, d := range defs {
		if scalarMatches(d, kind, n.Value) {
			return
		}
	}
	if kind != "string" {
		for _, d := range defs {
			if scalarMatches(d, "string", n.Value) {
				return
			}
		}
	}
	c.errorf(n, "Unexpected value '%s'", n.Value)
}

// scalarKind types a scalar as YamlObjectReader does (the YAML 1.2 core
// schema for plain scalars; quoted ones are strings).
func scalarKind(n *yaml.Node) string {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return "string"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "boolean"
	case "!!int", "!!float":
		return "number"
	}
	return "string"
}

func scalarMatches(d *templateDef, kind, value string) bool {
	switch {
	case kind == "null":
		return d.Null != nil
	case kind == "boolean":
		return d.Boolean != nil
	case kind == "number":
		return d.Number != nil
	case d.String == nil:
		return false
	case d.String.Constant != "":
		if d.String.IgnoreCase {
			return strings.EqualFold(d.String.Constant, value)
		}
		return d.String.Constant == value
	case d.String.RequireNonEmpty:
		return value != ""
	}
	return true
}

// isExpression reports whether a string scalar holds `${{`, and reports
// an error unless every expression in it uses only allowed, the named
// values and functions the position may use. Where nothing is allowed
// the runner would still take a pure string literal (`${{ 'text' }}`);
// no manifest here needs one, so no expression is allowed there.
func isExpression(c *manifestChecker, n *yaml.Node, allowed []string) bool {
	if scalarKind(n) != "string" || !strings.Contains(n.Value, "${{") {
		return false
	}
	exprs, err := splitExpressions(n.Value)
	if err != nil {
		c.errorf(n, "%v", err)
		return true
	}
	// With no context allowed, a name fails as on the runner
	// ("Unrecognized named-value: 'steps'"); the caller reports the rest.
	for _, e := range exprs {
		if err := checkExpression(e, allowed); err != nil {
			c.errorf(n, "%v", err)
			return true
		}
	}
	if len(allowed) == 0 {
		c.errorf(n, "A template expression is not allowed in this context")
	}
	return true
}

// splitExpressions finds the `${{ … }}` parts of s as ParseScalar does: a
// quote opens or closes a string, and `}}` outside one ends the expression.
func splitExpressions(s string) ([]string, error) {
	var out []string
	for {
		start := strings.Index(s, "${{")
		if start < 0 {
			return out, nil
		}
		end, inString := -1, false
		for i := start + 3; i < len(s); i++ {
			if s[i] == '\'' {
				inString = !inString
			} else if !inString && s[i] == '}' && s[i-1] == '}' && i-1 >= start+3 {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("The expression is not closed. An unescaped ${{ sequence was found, but the closing }} sequence was not found")
		}
		out = append(out, s[start+3:end-1])
		s = s[end+1:]
	}
}

// builtinFunctions are the expression functions available everywhere
// (GitHub.Actions.Expressions.ExpressionConstants), with their arity.
var builtinFunctions = map[string][2]int{
	"case": {3, 255}, "contains": {2, 2}, "endswith": {2, 2}, "format": {1, 255},
	"join": {1, 2}, "startswith": {2, 2}, "tojson": {1, 1}, "fromjson": {1, 1},
}

var contextFunction = regexp.MustCompile(`^([a-zA-Z0-9_]+)\(([0-9]+),([0-9]+|MAX)\)$`)

// checkExpression is ExpressionToken.IsValidExpression: every named value
// must be one of allowed, every function built in or allowed, with a
// number of arguments it takes.
func checkExpression(expr string, allowed []string) error {
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("Expected an expression")
	}
	named := map[string]bool{}
	funcs := map[string][2]int{}
	for k, v := range builtinFunctions {
		funcs[k] = v
	}
	for _, a := range allowed {
		if m := contextFunction.FindStringSubmatch(a); m != nil {
			lo, _ := strconv.Atoi(m[2])
			hi := 255
			if m[3] != "MAX" {
				hi, _ = strconv.Atoi(m[3])
			}
			funcs[strings.ToLower(m[1])] = [2]int{lo, hi}
		} else {
			named[strings.ToLower(a)] = true
		}
	}
	expr = strings.TrimSpace(expr)
	toks, err := lexExpression(expr)
	if err != nil {
		return fmt.Errorf("%v in expression: %s", err, expr)
	}
	for i, tk := range toks {
		if !isIdent(tk) || (i > 0 && toks[i-1] == ".") {
			continue // a literal, an operator, or a property after `.`
		}
		if i+1 < len(toks) && toks[i+1] == "(" {
			arity, ok := funcs[strings.ToLower(tk)]
			if !ok {
				return fmt.Errorf("Unrecognized function: '%s'. Located at position %d within expression: %s", tk, i+1, expr)
			}
			if n := countArgs(toks[i+1:]); n < arity[0] || n > arity[1] {
				return fmt.Errorf("%s takes %d to %d arguments, not %d, in expression: %s", tk, arity[0], arity[1], n, expr)
			}
			continue
		}
		switch tk {
		case "true", "false", "null", "NaN", "Infinity":
			continue
		}
		if !named[strings.ToLower(tk)] {
			return fmt.Errorf("Unrecognized named-value: '%s'. Located at position %d within expression: %s", tk, i+1, expr)
		}
	}
	return nil
}

func isIdent(tk string) bool {
	return tk != "" && (tk[0] == '_' || tk[0] >= 'a' && tk[0] <= 'z' || tk[0] >= 'A' && tk[0] <= 'Z')
}

// lexExpression splits an expression into identifiers, 'strings',
// numbers and punctuation; string contents never look like names.
func lexExpression(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case ch == '\'':
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string")
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case isIdent(string(ch)):
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == '-' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case ch >= '0' && ch <= '9':
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == 'x' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'f' || s[j] >= 'A' && s[j] <= 'F') {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			toks = append(toks, string(ch))
			i++
		}
	}
	return toks, nil
}

// countArgs counts the arguments of the call whose "(" starts toks.
func countArgs(toks []string) int {
	depth, n := 0, 0
	for i, tk := range toks {
		switch tk {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
			if depth == 0 {
				if i > 1 {
					n++
				}
				return n
			}
		case ",":
			if depth == 1 {
				n++
			}
		}
	}
	return n
}

// checkRuns is ActionManifestManager.ConvertRuns: what `using` may be and
// what each kind of action needs.
func (c *manifestChecker) checkRuns(root *yaml.Node) {
	var runs *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "runs" {
			runs = root.Content[i+1]
		}
	}
	if runs == nil || runs.Kind != yaml.MappingNode {
		c.errorf(root, "Top level 'runs:' section is required")
		return
	}
	has := map[string]string{}
	for i := 0; i+1 < len(runs.Content); i += 2 {
		has[runs.Content[i].Value] = runs.Content[i+1].Value
	}
	using, ok := has["using"]
	if !ok {
		if _, plugin := has["plugin"]; !plugin {
			c.errorf(runs, "Missing 'using' value. 'using' requires 'composite', 'docker', 'node12', 'node16', 'node20' or 'node24'.")
		}
		return
	}
	switch strings.ToLower(using) {
	case "docker":
		if has["image"] == "" {
			c.errorf(runs, "You are using a Container Action but an image is not provided")
		}
	case "node12", "node16", "node20", "node24":
		if has["main"] == "" {
			c.errorf(runs, "You are using a JavaScript Action but there is not an entry JavaScript file provided")
		}
	case "composite":
		if _, ok := has["steps"]; !ok {
			c.errorf(runs, "You are using a composite action but there are no steps provided")
		}
	default:
		c.errorf(runs, "'using: %s' is not supported, use 'docker', 'node12', 'node16', 'node20' or 'node24' instead.", using)
	}
}

// actionManifests are the action manifests in the repository: action.yml
// at the root and any composite action, test fixtures included (an action
// a test runs must load on GitHub's runner too). node_modules and hidden
// directories other than .github (.git, .cache with downloaded actions)
// are not the project's.
func actionManifests(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (name == "node_modules" || strings.HasPrefix(name, ".") && name != ".github") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (name == "action.yml" || name == "action.yaml") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunnerRules loads every action manifest of the repository by the
// runner's rules: the runner's schema, and expressions only where it
// allows them (an input's default, with the contexts it gives there).
func TestRunnerRules(t *testing.T) {
	s := loadRunnerSchema(t)
	root := moduleRoot(t)
	files := actionManifests(t, root)
	if !slices.Contains(files, filepath.Join(root, "action.yml")) {
		t.Fatalf("found %v, not action.yml", files)
	}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range checkManifest(s, b) {
				t.Errorf("%s %s", rel, e)
			}
		})
	}
}

// TestRunnerRulesChecker: the checker refuses what the runner refuses
// and accepts what it accepts, so TestRunnerRules can fail.
func TestRunnerRulesChecker(t *testing.T) {
	s := loadRunnerSchema(t)
	node := "runs:\n  using: node24\n  main: dist/main.js\n"
	tests := []struct {
		name, yml string
		wantErr   string // a substring of one error; "" for none
	}{
		{"minimal node action", "name: a\n" + node, ""},
		{"github token default", "inputs:\n  t:\n    description: d\n    default: ${{ github.token }}\n" + node, ""},
		{"default with hashFiles and matrix", "inputs:\n  t:\n    default: ${{ hashFiles('go.sum') }}-${{ matrix.os }}\n" + node, ""},
		{"non-string default is a string", "inputs:\n  t:\n    default: false\n    required: false\n" + node, ""},
		{"expression in an input description (issue 23)", "inputs:\n  builder:\n    description: e.g. `${{ steps.buildx.outputs.name }}`\n" + node, "Unrecognized named-value: 'steps'"},
		{"pure literal expression in a description", "description: ${{ 'x' }}\n" + node, "A template expression is not allowed"},
		{"expression in the action description", "description: for ${{ github.repository }}\n" + node, "Unrecognized named-value: 'github'"},
		{"steps in a default", "inputs:\n  t:\n    default: ${{ steps.x.outputs.y }}\n" + node, "Unrecognized named-value: 'steps'"},
		{"env in a default", "inputs:\n  t:\n    default: ${{ env.HOME }}\n" + node, "Unrecognized named-value: 'env'"},
		{"secrets in a default", "inputs:\n  t:\n    default: ${{ secrets.X }}\n" + node, "Unrecognized named-value: 'secrets'"},
		{"unknown function in a default", "inputs:\n  t:\n    default: ${{ always() }}\n" + node, "Unrecognized function: 'always'"},
		{"wrong arity", "inputs:\n  t:\n    default: ${{ contains('a') }}\n" + node, "arguments"},
		{"unclosed expression", "inputs:\n  t:\n    default: ${{ github.token\n" + node, "not closed"},
		{"quoted braces in a string", "inputs:\n  t:\n    default: ${{ format('{0}}}', github.ref) }}\n" + node, ""},
		{"expression in runs", "runs:\n  using: node24\n  main: ${{ github.token }}\n", "Unrecognized named-value: 'github'"},
		{"unknown runs key", node + "  foo: bar\n", "Unexpected value 'foo'"},
		{"unknown output key", "outputs:\n  o:\n    description: d\n    default: x\n" + node, "Unexpected value 'default'"},
		{"output value with steps", "outputs:\n  o:\n    value: ${{ steps.a.outputs.b }}\n" + node, ""},
		{"empty post-if", node + "  post-if: ''\n", "Unexpected value ''"},
		{"inputs not a mapping", "inputs: [a]\n" + node, "A sequence was not expected"},
		{"duplicate key ignoring case", "name: a\nNAME: b\n" + node, "already defined"},
		{"anchor", "name: &n a\ndescription: *n\n" + node, "Anchors are not currently supported"},
		{"unsupported using", "runs:\n  using: node25\n  main: m.js\n", "'using: node25' is not supported"},
		{"node without main", "runs:\n  using: node24\n  post: p.js\n", "not an entry JavaScript file"},
		{"no runs", "name: a\n", "'runs:' section is required"},
		{"composite with inputs", "runs:\n  using: composite\n  steps:\n    - uses: ./\n      with:\n        context: ${{ inputs.context }}\n    - run: echo ${{ steps.a.outputs.b }}\n      shell: bash\n", ""},
		{"deprecationMessage and branding", "branding:\n  icon: zap\ninputs:\n  old:\n    deprecationMessage: use new\n" + node, ""},
		{"composite step if, continue-on-error and hashFiles(format())", "runs:\n  using: composite\n  steps:\n    - uses: actions/cache@v4\n      id: c\n      with:\n        key: k-${{ hashFiles(format('{0}/go.sum', inputs.dir)) }}\n    - run: make\n      if: ${{ steps.c.outputs.cache-hit != 'true' && inputs.x == 'y' }}\n      continue-on-error: true\n      working-directory: ${{ github.workspace }}\n      env:\n        A: ${{ env.B }}\n      shell: bash\n", ""},
		{"composite run step without shell", "runs:\n  using: composite\n  steps:\n    - run: echo\n", "Required property is missing: shell"},
		{"composite step with secrets", "runs:\n  using: composite\n  steps:\n    - run: echo ${{ secrets.X }}\n      shell: bash\n", "Unrecognized named-value: 'secrets'"},
		{"docker args take inputs only", "runs:\n  using: docker\n  image: Dockerfile\n  args: ['${{ inputs.a }}', '${{ github.ref }}']\n", "Unrecognized named-value: 'github'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := checkManifest(s, []byte(tt.yml))
			if tt.wantErr == "" {
				if len(errs) > 0 {
					t.Errorf("refused a manifest the runner loads: %v", errs)
				}
				return
			}
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.wantErr) }) {
				t.Errorf("errors %q, want one containing %q", errs, tt.wantErr)
			}
		})
	}
}
