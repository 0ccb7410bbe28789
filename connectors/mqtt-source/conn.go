package mqttsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// ackInterval is how often the client sends the acknowledgements that are due, in the order
// the messages came (paho sends them in batches; MQTT requires that order).
const ackInterval = 10 * time.Millisecond

// connOptions is what differs between a task's connection and the short one of a connection
// test.
type connOptions struct {
	clientID      string
	cleanStart    bool
	sessionExpiry time.Duration
	onUp          func(*autopaho.ConnectionManager, *paho.Connack)
	onDown        func() bool
	onConnectErr  func(*connectError)
	onDisconnect  func(*paho.Disconnect)
	onClientError func(error)
	onPublish     func(paho.PublishReceived) (bool, error)
}

// newConnection starts an autopaho connection manager for the configuration: it connects to
// the first server that answers, reconnects with backoff when the connection is lost, and
// leaves acknowledging messages to the task.
func newConnection(ctx context.Context, cfg *Config, opts connOptions, log *slog.Logger) (*autopaho.ConnectionManager, error) {
	servers, anyTLS, err := cfg.servers()
	if err != nil {
		return nil, err
	}
	ac := autopaho.ClientConfig{
		ServerUrls:                    servers,
		KeepAlive:                     uint16(cfg.KeepAlive / time.Second),
		CleanStartOnInitialConnection: opts.cleanStart,
		SessionExpiryInterval:         uint32(opts.sessionExpiry / time.Second),
		ReconnectBackoff:              backoff(cfg.BackoffMin, cfg.BackoffMax),
		ConnectTimeout:                min(cfg.ConnectTimeout, 10*time.Second),
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		OnConnectionUp:                opts.onUp,
		OnConnectionDown:              opts.onDown,
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			rm := uint16(cfg.ReceiveMaximum)
			cp.Properties.ReceiveMaximum = &rm
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   opts.clientID,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           ackInterval,
			OnServerDisconnect:         opts.onDisconnect,
			OnClientError:              opts.onClientError,
		},
	}
	if opts.onPublish != nil {
		ac.OnPublishReceived = []func(paho.PublishReceived) (bool, error){opts.onPublish}
	}
	if anyTLS {
		tc, err := cfg.tlsConfig("")
		if err != nil {
			return nil, err
		}
		ac.TlsCfg = tc
	}
	if bufferedConnections(servers) {
		ac.AttemptConnection = dialBuffered
	}
	ac.OnConnectError = func(err error) {
		ce := explainAttempt(ctx, cfg, servers, ac.TlsCfg, err)
		if opts.onConnectErr != nil {
			opts.onConnectErr(ce)
		} else {
			log.Warn("MQTT connection attempt failed", "err", ce)
		}
	}
	return autopaho.NewConnection(ctx, ac)
}

// explainAttempt explains a failed connection attempt to one of the servers (the one the
// error names, or the only one).
func explainAttempt(ctx context.Context, cfg *Config, servers []*url.URL, tlsCfg *tls.Config, err error) *connectError {
	server := "the broker"
	isTLS := false
	for _, u := range servers {
		isTLS = isTLS || usesTLS(u)
	}
	var host *url.URL
	if len(servers) == 1 {
		host = servers[0]
	}
	for _, u := range servers {
		if strings.Contains(err.Error(), u.String()) {
			host = u
		}
	}
	if host != nil {
		server, isTLS = host.Redacted(), usesTLS(host)
		if isTLS && cfg.TLSCert == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			// The TLS alert saying why may have been lost in the reset: look again.
			if alert := probeTLSAlert(ctx, host, tlsCfg); alert != nil {
				err = fmt.Errorf("%w (a handshake without writing got: %w)", err, alert)
			}
		}
	}
	return explain(server, err, cfg, isTLS)
}

// probeTLSAlert completes a TLS handshake with an ssl:// server and reads without writing, to
// catch the alert a broker sends when it refuses the client's certificate (or lack of one).
// Writing first, as the MQTT CONNECT does, can turn that alert into a bare connection reset.
// It returns the alert's error, or nil when there was none to see.
func probeTLSAlert(ctx context.Context, u *url.URL, cfg *tls.Config) error {
	if s := strings.ToLower(u.Scheme); s == "ws" || s == "wss" || cfg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		if strings.Contains(err.Error(), "tls: ") {
			return err
		}
		return nil
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "tls: ") {
		return err
	}
	return nil
}

// backoff waits nothing before the first attempt, then from lo doubling up to hi, with a
// fifth of jitter so that tasks that lost the broker together do not come back in step.
func backoff(lo, hi time.Duration) autopaho.Backoff {
	return func(attempt int) time.Duration {
		if attempt <= 0 {
			return 0
		}
		d := lo
		for i := 1; i < attempt && d < hi; i++ {
			d *= 2
		}
		d = min(d, hi)
		return d + time.Duration(rand.Int64N(int64(d)/5+1))
	}
}

// testConnection connects once to each server with a throwaway client id and a session that
// ends with the connection, for the connector's Validate: it returns nil as soon as one
// server accepts or any could not be reached, else the reasons they gave for refusing. With
// mqtt.protocol.version=auto, servers that refuse MQTT v5 are tried with 3.1.1.
func testConnection(ctx context.Context, cfg *Config, log *slog.Logger) error {
	var b [6]byte
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand.IntN(36)]
	}
	clientID := cfg.ClientIDPrefix + "validate-" + string(b[:])
	timeout := min(cfg.ConnectTimeout, 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout*time.Duration(len(cfg.ServerURIs))+time.Second)
	defer cancel()
	up := make(chan struct{}, 1)
	failures := make(chan *connectError, len(cfg.ServerURIs))
	onUp := func() {
		select {
		case up <- struct{}{}:
		default:
		}
	}
	onConnectErr := func(ce *connectError) {
		if cfg.ProtocolVersion == VersionAuto && versionRefused(ce.err) {
			ce.versionRefused, ce.permanent = true, true
		}
		select {
		case failures <- ce:
		default:
		}
	}
	one := *cfg
	one.BackoffMin, one.BackoffMax = time.Hour, time.Hour // one round over the servers
	var disconnect func(context.Context) error
	if cfg.ProtocolVersion == Version311 {
		c, err := newConnection3(ctx, &one, connOptions3{clientID: clientID, clean: true,
			onUp: func(mqtt3.Client, bool) { onUp() }, onConnectErr: onConnectErr}, log)
		if err != nil {
			return err
		}
		disconnect = c.disconnect
	} else {
		cm, err := newConnection(ctx, &one, connOptions{clientID: clientID, cleanStart: true,
			onUp: func(*autopaho.ConnectionManager, *paho.Connack) { onUp() }, onConnectErr: onConnectErr}, log)
		if err != nil {
			return err
		}
		disconnect = cm.Disconnect
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		_ = disconnect(dctx)
	}()
	// autopaho reports each server's failure; paho.mqtt.golang one per round over them all.
	want := len(cfg.ServerURIs)
	if cfg.ProtocolVersion == Version311 {
		want = 1
	}
	var reasons []string
	refused := 0
	for {
		select {
		case <-up:
			return nil
		case ce := <-failures:
			if !ce.permanent {
				return nil // unreachable for now: the tasks will keep trying
			}
			if ce.versionRefused {
				refused++
			}
			reasons = append(reasons, ce.Error())
			if len(reasons) == want {
				if refused > 0 {
					v3 := *cfg
					v3.ProtocolVersion = Version311
					return testConnection(ctx, &v3, log)
				}
				return fmt.Errorf("%s", strings.Join(reasons, "; "))
			}
		case <-ctx.Done():
			return nil
		}
	}
}
