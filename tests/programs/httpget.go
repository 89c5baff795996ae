// A static Go HTTP client: N concurrent GETs of one URL, while a busy
// goroutine forces the runtime's SIGURG preemption. Prints "ok N" when every
// body equals WANT.  usage: httpget URL N WANT
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url, want := os.Args[1], os.Args[3]
	n, _ := strconv.Atoi(os.Args[2])
	var stop int32
	go func() { // never yields: the scheduler must preempt it with signals
		x := 0
		for atomic.LoadInt32(&stop) == 0 {
			x++
		}
		_ = x
	}()
	client := &http.Client{Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	var good int64
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(url)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if string(body) != want {
				errs <- fmt.Errorf("body %q", body)
				return
			}
			atomic.AddInt64(&good, 1)
		}()
	}
	wg.Wait()
	atomic.StoreInt32(&stop, 1)
	close(errs)
	for e := range errs {
		fmt.Fprintln(os.Stderr, "error:", e)
	}
	fmt.Printf("ok %d\n", good)
	if int(good) != n {
		os.Exit(1)
	}
}
