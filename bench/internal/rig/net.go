package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// FreeAddr is a loopback address with a port nobody listens on.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitHTTP waits up to 30s for u to answer a GET.
func WaitHTTP(ctx context.Context, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer within 30s", u)
}

// Toxiproxy adds a proxy with delayMS latency each way in front of
// upstream, through toxiproxy's API at api, and returns its address.
func Toxiproxy(api, name, upstream string, delayMS int) (string, error) {
	listen, err := FreeAddr()
	if err != nil {
		return "", err
	}
	post := func(path string, v any) error {
		b, _ := json.Marshal(v)
		resp, err := http.Post("http://"+api+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("toxiproxy %s: %s", path, resp.Status)
		}
		return nil
	}
	if err := post("/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}); err != nil {
		return "", err
	}
	for _, stream := range []string{"upstream", "downstream"} {
		if err := post("/proxies/"+name+"/toxics", map[string]any{"name": name + "-" + stream, "type": "latency", "stream": stream,
			"attributes": map[string]int{"latency": delayMS}}); err != nil {
			return "", err
		}
	}
	return listen, nil
}

// Stop interrupts each started process in turn and kills it if it has
// not exited 5s later.
func Stop(procs []*exec.Cmd) {
	for _, p := range procs {
		if p.Process != nil {
			_ = p.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = p.Process.Kill()
			}
		}
	}
}
