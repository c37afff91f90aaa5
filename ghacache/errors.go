package ghacache

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"unicode/utf8"
)

// parseErrorBody pulls a code and message out of the error bodies the
// services send: Twirp {"code","msg"}, the v1 service's
// {"message","typeKey"}, GitHub REST {"message"}, Azure XML
// <Error><Code/><Message/></Error>. Anything else becomes a short snippet.
func parseErrorBody(b []byte) (code, msg string) {
	b = []byte(strings.TrimPrefix(string(b), "\ufeff"))
	var j struct {
		Code    string `json:"code"`
		Msg     string `json:"msg"`
		Message string `json:"message"`
		TypeKey string `json:"typeKey"`
	}
	if json.Unmarshal(b, &j) == nil {
		code, msg = j.Code, j.Msg
		if msg == "" {
			msg = j.Message
		}
		if code == "" && strings.Contains(j.TypeKey, "AlreadyExists") {
			code = "already_exists"
		}
		return code, msg
	}
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(b, &x) == nil && (x.Code != "" || x.Message != "") {
		msg, _, _ = strings.Cut(strings.TrimSpace(x.Message), "\n")
		return x.Code, msg
	}
	return "", snippet(b)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
