package mqttsource

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/autopaho"
	"golang.org/x/net/proxy"
)

// bufferedConn reads an MQTT connection through a buffer. paho.golang reads each packet's
// fixed header a byte at a time and then its body, which on a bare TCP or TLS connection is
// several system calls per message; with the buffer a read takes whatever has arrived.
// Websocket connections buffer on their own.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
	// paho locks a connection that is a sync.Locker while it writes a packet, so that packets
	// written from several goroutines do not interleave.
	sync.Mutex
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// readBufferSize holds a few dozen typical sensor messages.
const readBufferSize = 64 << 10

// bufferedConnections reports whether every server can be dialled by dialBuffered: plain TCP
// and TLS, not websockets.
func bufferedConnections(servers []*url.URL) bool {
	for _, u := range servers {
		switch strings.ToLower(u.Scheme) {
		case "mqtt", "tcp", "", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		default:
			return false
		}
	}
	return true
}

// dialBuffered connects to a TCP or TLS server as autopaho does (through the proxy the
// environment names, if any), within the connect timeout, and buffers the reads.
func dialBuffered(ctx context.Context, cfg autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
	if cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.ConnectTimeout)
		defer cancel()
	}
	conn, err := proxy.Dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if usesTLS(u) || strings.EqualFold(u.Scheme, "mqtt+ssl") || strings.EqualFold(u.Scheme, "tcps") {
		tlsCfg := cfg.TlsCfg
		if tlsCfg == nil || tlsCfg.ServerName == "" {
			// Check the certificate against the server's host, as tls.Dial does.
			if tlsCfg == nil {
				tlsCfg = &tls.Config{}
			} else {
				tlsCfg = tlsCfg.Clone()
			}
			tlsCfg.ServerName = u.Hostname()
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, readBufferSize)}, nil
}

var _ sync.Locker = (*bufferedConn)(nil)
