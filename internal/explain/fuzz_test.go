package explain

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecode: whatever a store hands back, Decode returns a record or an
// error, and a decoded record compares with itself and with a real one
// without panicking.
func FuzzDecode(f *testing.F) {
	real := record(graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}, nil)
	b, err := Encode(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	small, _ := Encode(NewRecord(Build{Created: time.Unix(0, 0), Vertices: []BuildVertex{{Digest: "d", Name: "[1/1] RUN x"}}}))
	f.Add(small)
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			return
		}
		Compare(r, r)
		Compare(real, r)
		Compare(r, real)
		if _, err := Encode(r); err != nil && len(r.Files) > 1 {
			t.Logf("encode: %v", err)
		}
	})
}

// FuzzDecodeJSON reaches the JSON checks behind the gzip layer.
func FuzzDecodeJSON(f *testing.F) {
	real := record(graph{session: "s1", base: "aaa", run: "go mod download", cached: hitAll}, nil)
	js, err := json.Marshal(real)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(js)
	f.Add([]byte(`{"format":1,"vertices":[{"d":"a","n":"[1/2] RUN a","i":[0]}]}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(js)
		zw.Close()
		r, err := Decode(buf.Bytes())
		if err != nil {
			return
		}
		Compare(r, r)
		Compare(real, r)
		Compare(r, real)
	})
}
