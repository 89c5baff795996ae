// A static Go HTTP server and load client for the `joyride exec` tests.
//
//	exec_http serve ADDR:PORT     serves GET /N: N deterministic bytes
//	                              (body(N)); prints "listening" once bound
//	exec_http load URL_BASE N     N concurrent GETs of URL_BASE/SIZE
//	                              (sizes about 1, 1000 and 100000 bytes),
//	                              10 s timeout each; prints "ok N" when
//	                              every body is right, else the failures
//	                              and exits 1
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func body(n int) []byte {
	b := make([]byte, n)
	x := uint32(n)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func serve(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Println("listening")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil || n < 0 || n > 1<<24 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body(n))
	})
	srv := &http.Server{Handler: handler, ReadTimeout: 30 * time.Second}
	fmt.Fprintln(os.Stderr, srv.Serve(ln))
	os.Exit(1)
}

func load(base string, n int) {
	sizes := []int{1, 1000, 100000}
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			size := sizes[i%len(sizes)] + i
			resp, err := client.Get(fmt.Sprintf("%s/%d", base, size))
			if err == nil {
				var got []byte
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				if err == nil && !bytes.Equal(got, body(size)) {
					err = fmt.Errorf("body of %d bytes differs (want %d)", len(got), size)
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("request %d: %v", i, err))
				mu.Unlock()
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		fmt.Printf("%d of %d failed\n%s\n", len(errs), n, strings.Join(errs, "\n"))
		os.Exit(1)
	}
	fmt.Printf("ok %d\n", n)
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "serve" {
		serve(os.Args[2])
	} else if len(os.Args) >= 4 && os.Args[1] == "load" {
		n, _ := strconv.Atoi(os.Args[3])
		load(os.Args[2], n)
	} else {
		fmt.Fprintln(os.Stderr, "usage: exec_http serve ADDR:PORT | exec_http load URL_BASE N")
		os.Exit(2)
	}
}
