package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// pprofEnv names the address of a Go profiling listener (net/http/pprof)
// the gateway starts before anything else when it is set. It is off by
// default and meant for benchmarks and performance work only: the
// listener has no authentication, so give it a loopback address. It is
// not a configuration key (AOF2_*), so the configuration loader does not
// see it.
const pprofEnv = "AOF_GATEWAY_PPROF"

func init() {
	if addr := os.Getenv(pprofEnv); addr != "" {
		if _, err := startPprof(addr); err != nil {
			fmt.Fprintf(os.Stderr, "aof-gateway: %s=%s: %v\n", pprofEnv, addr, err)
			os.Exit(exitUsage)
		}
		slog.Info("pprof_listening", "addr", addr, "detail", "profiling endpoints under /debug/pprof/ ("+pprofEnv+")")
	}
}

// startPprof serves the profiling endpoints on addr on a mux of their own
// (never the metrics listener's) and returns the address it listens on.
func startPprof(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return ln.Addr(), nil
}
