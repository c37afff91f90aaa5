package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// counter is the bytes that went through a store's proxies: up is what
// clients sent to the store (exports, uploads), down what they read.
type counter struct{ up, down atomic.Int64 }

func (c *counter) read() (up, down int64) { return c.up.Load(), c.down.Load() }

// countingProxy forwards TCP connections to upstream and counts the bytes
// each way. It sits in front of every store (and of toxiproxy, when a
// delay is asked for), so "bytes moved" is measured on the wire.
type countingProxy struct {
	l        net.Listener
	upstream string
	c        *counter
	wg       sync.WaitGroup
}

func startCountingProxy(upstream string, c *counter) (*countingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{l: l, upstream: upstream, c: c}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *countingProxy) addr() string { return p.l.Addr().String() }

func (p *countingProxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(conn)
	}
}

func (p *countingProxy) forward(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, n *atomic.Int64) {
		_, _ = io.Copy(countWriter{dst, n}, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client, &p.c.up)
	go pipe(client, server, &p.c.down)
	<-done
	<-done
}

func (p *countingProxy) close() {
	p.l.Close()
	p.wg.Wait()
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
