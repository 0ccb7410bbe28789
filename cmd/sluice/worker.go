package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	_ "github.com/sluicehq/sluice/connectors/all" // the standard connectors
	"github.com/sluicehq/sluice/rest"
	"github.com/sluicehq/sluice/rest/auth"
	"github.com/sluicehq/sluice/worker"
)

// settingsFlag collects --set key=value flags.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return fmt.Sprint(map[string]string(s)) }
func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s[strings.TrimSpace(k)] = strings.TrimSpace(val)
	return nil
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "worker settings file (Kafka Connect's worker.properties format)")
	logLevel := fs.String("log-level", "INFO", "log level: DEBUG, INFO, WARN, ERROR")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	overrides := settingsFlag{}
	fs.Var(overrides, "set", "a worker setting, key=value; repeatable; wins over the file and SLUICE_WORKER_* variables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	settings, err := worker.LoadWorkerSettings(*configPath, os.Environ(), overrides)
	if err != nil {
		return err
	}
	cfg, err := worker.ParseWorkerConfig(settings)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	levels := worker.NewLogLevels(handler, slog.LevelInfo)
	if _, err := levels.Set("root", *logLevel); err != nil {
		return err
	}
	log := levels.Logger("sluice")
	slog.SetDefault(log)

	ws, err := startWorker(ctx, cfg, levels, stdout)
	if err != nil {
		return err
	}
	// Package initialisation (iceberg-go loads its substrait function catalogue, some 30 MB of
	// short-lived allocations) and start-up leave a peak heap that an idle worker never needs
	// again: hand it back to the OS rather than keep it resident.
	debug.FreeOSMemory()
	select {
	case <-ctx.Done():
	case err = <-ws.serveErr:
	}
	log.Info("shutting down")
	ws.stop()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// servedWorker is a started worker with its REST API.
type servedWorker struct {
	w        *worker.Worker
	srv      *http.Server
	serveErr chan error
}

// startWorker starts a worker and serves its REST API on its first listener.
func startWorker(ctx context.Context, cfg *worker.WorkerConfig, levels *worker.LogLevels, stdout io.Writer) (*servedWorker, error) {
	restLog := levels.Logger("sluice.rest")
	authn, err := restAuth(cfg, restLog)
	if err != nil {
		return nil, err
	}
	files := rest.TLSFiles{Certificate: cfg.TLS.Certificate, Key: cfg.TLS.Key, Truststore: cfg.TLS.Truststore, ClientAuth: cfg.TLS.ClientAuth, Log: restLog}
	lis, err := listen(cfg.Listeners[0], files)
	if err != nil {
		return nil, err
	}
	client, err := workerClient(cfg, files)
	if err != nil {
		lis.Close()
		return nil, err
	}
	w, err := worker.NewWorker(cfg, worker.Options{Levels: levels, Version: buildVersion(), HTTPClient: client})
	if err != nil {
		lis.Close()
		return nil, err
	}
	if cfg.AdvertisedPort == 0 {
		w.SetAdvertisedPort(lis.Addr().(*net.TCPAddr).Port)
	}
	var metrics http.Handler
	if cfg.MetricsEnable {
		metrics = promhttp.HandlerFor(w.Metrics(), promhttp.HandlerOpts{})
	}
	api := rest.New(w, rest.Options{Logger: restLog, Metrics: metrics, HTTPClient: client,
		CORS: rest.CORS{AllowOrigins: cfg.AllowOrigins, AllowMethods: cfg.AllowMethods}, AllowedHosts: ownHostNames(cfg, w.URL()), Auth: authn})
	ws := &servedWorker{w: w, serveErr: make(chan error, 1), srv: rest.NewServer(api)}
	go func() { ws.serveErr <- ws.srv.Serve(lis) }()
	fmt.Fprintf(stdout, "sluice worker %s: REST API at %s\n", w.ID(), w.URL())

	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = w.Start(startCtx)
	cancel()
	if err != nil {
		_ = ws.srv.Close()
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	return ws, nil
}

// restAuth reads the REST API's credentials. A worker with none refuses to start when a
// listener can be reached from other machines, unless rest.auth.none.allowed says so.
func restAuth(cfg *worker.WorkerConfig, log *slog.Logger) (rest.Auth, error) {
	certs := cfg.TLS.ClientAuth == "required" || cfg.TLS.ClientAuth == "requested"
	if cfg.AuthUsersFile == "" && cfg.AuthTokensFile == "" && !certs {
		if cfg.AuthNoneAllowed {
			return rest.Auth{}, nil
		}
		for _, l := range cfg.Listeners {
			if !loopbackListener(l) {
				return rest.Auth{}, fmt.Errorf("listeners: %s can be reached from other machines, and the REST API has no authentication: "+
					"set rest.auth.users.file or rest.auth.tokens.file, listen on 127.0.0.1, or set rest.auth.none.allowed=true "+
					"to serve without authentication (see docs/security.md)", l)
			}
		}
		return rest.Auth{}, nil
	}
	creds := &auth.Credentials{UsersFile: cfg.AuthUsersFile, TokensFile: cfg.AuthTokensFile, ClientCertificates: certs, Log: log}
	if err := creds.Load(); err != nil {
		return rest.Auth{}, fmt.Errorf("REST authentication: %w", err)
	}
	return rest.Auth{Authenticator: creds, Admins: cfg.AuthAdmins, Readers: cfg.AuthReaders}, nil
}

// loopbackListener reports whether a listener URL binds a loopback address only.
func loopbackListener(listener string) bool {
	u, err := url.Parse(listener)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ownHostNames are the names requests may give the worker's host besides localhost and
// addresses: rest.allowed.hosts, the advertised host and the machine's name (Debian maps it to
// 127.0.1.1, so other workers' forwards reach a loopback address with it).
func ownHostNames(cfg *worker.WorkerConfig, advertised string) []string {
	names := slices.Clone(cfg.AllowedHosts)
	if u, err := url.Parse(advertised); err == nil && u.Hostname() != "" {
		names = append(names, u.Hostname())
	}
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	return names
}

// stop stops serving the API and the worker.
func (ws *servedWorker) stop() {
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = ws.srv.Shutdown(shutdown)
	ws.w.Stop()
}

// listen opens a REST listener given as a URL: http://:8083, or https://:8443 with the
// listeners.https.ssl.* files.
func listen(listener string, files rest.TLSFiles) (net.Listener, error) {
	u, err := url.Parse(listener)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("listeners: %q is not a URL like http://:8083", listener)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("listeners: %q: a listener is http:// or https://", listener)
	}
	var tlsCfg *tls.Config
	if u.Scheme == "https" {
		if tlsCfg, err = rest.ServerTLS(files); err != nil {
			return nil, fmt.Errorf("listeners: %s: %w", listener, err)
		}
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listener, err)
	}
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	return l, nil
}

// workerClient is the client the worker calls other workers with: over TLS with the
// listeners.https.ssl.* files when this worker's listener is https:// (its peers' are too).
func workerClient(cfg *worker.WorkerConfig, files rest.TLSFiles) (*http.Client, error) {
	if !strings.HasPrefix(cfg.Listeners[0], "https://") {
		return nil, nil // the defaults
	}
	tlsCfg, err := rest.ClientTLS(files)
	if err != nil {
		return nil, err
	}
	return rest.HTTPClient(tlsCfg), nil
}
