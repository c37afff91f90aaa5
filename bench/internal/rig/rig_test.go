package rig

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		xs               []float64
		n                int
		median, lo, high float64
	}{
		{nil, 0, 0, 0, 0},
		{[]float64{3}, 1, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 3, 1, 5},
		{[]float64{4, 1, 2, 8}, 4, 3, 1, 8},
	} {
		n, m, lo, hi := Summarize(c.xs)
		if n != c.n || m != c.median || lo != c.lo || hi != c.high {
			t.Errorf("Summarize(%v) = %d, %g, %g, %g; want %d, %g, %g, %g", c.xs, n, m, lo, hi, c.n, c.median, c.lo, c.high)
		}
	}
	xs := []float64{2, 1}
	Summarize(xs)
	if xs[0] != 2 {
		t.Errorf("Summarize sorted its argument: %v", xs)
	}
}

func TestCacheHits(t *testing.T) {
	if h, s := CacheHits("digest: x\ncache-hits: 7\ncache-steps: 9\n"); h != 7 || s != 9 {
		t.Errorf("got %d/%d, want 7/9", h, s)
	}
	if h, s := CacheHits("no outputs\n"); h != -1 || s != -1 {
		t.Errorf("got %d/%d, want -1/-1", h, s)
	}
}

func TestLastLines(t *testing.T) {
	if got := LastLines("a\nb\nc\nd\n", 3); got != "b | c | d" {
		t.Errorf("got %q", got)
	}
	if got := LastLines("one", 3); got != "one" {
		t.Errorf("got %q", got)
	}
}

func TestWaitHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if err := WaitHTTP(context.Background(), srv.URL); err != nil {
		t.Fatal(err)
	}
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitHTTP(ctx, "http://"+addr+"/"); err == nil {
		t.Error("WaitHTTP on a free port with a cancelled context: no error")
	}
}
