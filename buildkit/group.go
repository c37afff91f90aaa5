package buildkit

import (
	"bytes"
	"io"
	"regexp"
)

// plainLine matches a line of progressui's plain output: "#12 …".
var plainLine = regexp.MustCompile(`^#(\d+) (.*)$`)

// groupWriter folds plain progress into one group per vertex. Plain output
// interleaves vertices that run in parallel; each switch opens a new group
// titled with the vertex's name, so no line lands in the wrong group. The
// Grouper must write to the same stream as w (in the action: stdout).
type groupWriter struct {
	w     io.Writer
	g     Grouper
	buf   []byte
	cur   string // id of the open group, "" when none
	names map[string]string
}

func (gw *groupWriter) Write(p []byte) (int, error) {
	gw.buf = append(gw.buf, p...)
	for {
		i := bytes.IndexByte(gw.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := gw.buf[:i+1]
		if err := gw.line(line); err != nil {
			return 0, err
		}
		gw.buf = gw.buf[i+1:]
	}
}

func (gw *groupWriter) line(line []byte) error {
	text := string(bytes.TrimRight(line, "\r\n"))
	switch m := plainLine.FindStringSubmatch(text); {
	case m != nil:
		id := m[1]
		if gw.names == nil {
			gw.names = map[string]string{}
		}
		if _, ok := gw.names[id]; !ok {
			gw.names[id] = m[2]
		}
		if id != gw.cur {
			gw.end()
			gw.g.Group("#" + id + " " + gw.names[id])
			gw.cur = id
		}
	case text == "":
		// blank separators stay in the open group
	default:
		gw.end() // error summaries and the like belong outside any group
	}
	_, err := gw.w.Write(line)
	return err
}

func (gw *groupWriter) end() {
	if gw.cur != "" {
		gw.g.EndGroup()
		gw.cur = ""
	}
}

// Close writes a trailing partial line and closes the open group.
func (gw *groupWriter) Close() error {
	var err error
	if len(gw.buf) > 0 {
		err = gw.line(append(gw.buf, '\n'))
		gw.buf = nil
	}
	gw.end()
	return err
}
