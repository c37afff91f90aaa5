package ghaction

import (
	"strings"
	"unicode"
)

// workflowCommand is a stdout line as the runner's ActionCommand.TryParseV2
// reads it (actions/runner src/Runner.Worker/ActionCommandManager.cs).
type workflowCommand struct {
	Name  string
	Props map[string]string
	Data  string
}

// parseCommands returns the workflow commands the runner would see in out,
// and any other line that contains the legacy "##[" prefix (the runner tries
// the legacy form, matched anywhere in a line, only when TryParseV2 fails).
func parseCommands(out string) (cmds []workflowCommand, legacy []string) {
	unescapeData := strings.NewReplacer("%0D", "\r", "%0A", "\n", "%25", "%")
	unescapeProp := strings.NewReplacer("%0D", "\r", "%0A", "\n", "%3A", ":", "%2C", ",", "%25", "%")
	for _, line := range strings.Split(out, "\n") {
		msg := strings.TrimLeftFunc(line, unicode.IsSpace)
		end := -1
		if strings.HasPrefix(msg, "::") {
			end = strings.Index(msg[2:], "::")
		}
		if end < 0 {
			if strings.Contains(line, "##[") {
				legacy = append(legacy, line)
			}
			continue
		}
		info := msg[2 : 2+end]
		c := workflowCommand{Props: map[string]string{}, Data: unescapeData.Replace(msg[2+end+2:])}
		name, props, _ := strings.Cut(info, " ")
		c.Name = name
		for _, p := range strings.Split(props, ",") {
			if k, v, ok := strings.Cut(p, "="); ok && k != "" && v != "" {
				c.Props[k] = unescapeProp.Replace(v)
			}
		}
		cmds = append(cmds, c)
	}
	return cmds, legacy
}
