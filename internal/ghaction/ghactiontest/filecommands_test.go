package ghactiontest

import "testing"

func TestParseFileCommands(t *testing.T) {
	tests := []struct {
		name, text string
		want       []KeyValue
		wantErr    bool
	}{
		{"single line", "a=1\nb=x=y\n", []KeyValue{{"a", "1"}, {"b", "x=y"}}, false},
		{"heredoc", "a<<EOF\nl1\nl2\nEOF\n", []KeyValue{{"a", "l1\nl2"}}, false},
		{"empty heredoc", "a<<EOF\nEOF\n", []KeyValue{{"a", ""}}, false},
		{"equals before heredoc", "a=b<<EOF\n", []KeyValue{{"a", "b<<EOF"}}, false},
		{"heredoc before equals", "a<<E=F\nv\nE=F\n", []KeyValue{{"a", "v"}}, false},
		{"blank lines skipped", "\n\na=1\n\n", []KeyValue{{"a", "1"}}, false},
		{"last line unterminated", "a=1", []KeyValue{{"a", "1"}}, false},
		{"delimiter unterminated", "a<<EOF\nv\nEOF", []KeyValue{{"a", "v"}}, false},
		{"missing delimiter", "a<<EOF\nv\n", nil, true},
		{"value line without newline", "a<<EOF\nv", nil, true},
		{"neither form", "garbage\n", nil, true},
		{"empty delimiter", "a<<\nv\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFileCommands(tt.text)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("entry %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}
