package rest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/worker/api"
	"github.com/sluicehq/sluice/worker/sessionkey"
)

// forwardParam is the query parameter that counts hops between workers, as in Kafka Connect:
// absent on a user's request, "true" on the first forward (the receiver may forward once
// more), "false" on the second (the receiver must handle it or give up).
const forwardParam = "forward"

// forwardedHeaders are the request headers a forward carries to the target.
var forwardedHeaders = []string{"Content-Type", "Accept", "Authorization", sessionkey.Header, sessionkey.AlgorithmHeader}

// relayedHeaders are the target's response headers the forwarding worker passes back.
var relayedHeaders = []string{"Content-Type", "Location"}

// forward answers a request the worker says belongs on another worker (the leader, or the
// task's owner) by replaying it there: same method, path, body and query, with forward=true
// on the first hop and forward=false on the second. After two hops, or with no known target,
// it answers 409: the cluster is most likely rebalancing.
func (a *handlers) forward(w http.ResponseWriter, r *http.Request, nl *api.NotLeaderError) {
	if err := a.forwardTo(w, r, nl); err != nil {
		// Never a NotLeaderError, so fail does not come back here.
		a.fail(w, r, err)
	}
}

func (a *handlers) forwardTo(w http.ResponseWriter, r *http.Request, nl *api.NotLeaderError) error {
	role := nl.What
	if role == "" {
		role = "leader"
	}
	q := r.URL.Query()
	first := !q.Has(forwardParam)
	if !first {
		again, err := strconv.ParseBool(q.Get(forwardParam))
		if err != nil {
			return badRequest("query parameter %s must be true or false, not %q", forwardParam, q.Get(forwardParam))
		}
		if !again {
			return conflict("Cannot complete the request: it was forwarded twice and this worker is still not "+
				"the %s, likely because a rebalance is underway; retry shortly", role)
		}
	}
	if nl.URL == "" {
		return conflict("Cannot complete the request: the %s is not known (leader unknown), likely because a "+
			"rebalance is underway; retry shortly", role)
	}
	base, err := url.Parse(strings.TrimSuffix(nl.URL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return fmt.Errorf("forwarding the request to the %s: the worker gave an invalid URL %q", role, nl.URL)
	}
	// The first worker lets the receiver forward once more; the second does not.
	q.Set(forwardParam, strconv.FormatBool(first))
	target := base.String() + r.URL.EscapedPath() + "?" + q.Encode()

	var body io.Reader
	if b := requestBody(r); len(b) > 0 {
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, body)
	if err != nil {
		return fmt.Errorf("forwarding the request to the %s at %s: %w", role, nl.URL, err)
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	a.log.Debug("forwarding REST request", "method", r.Method, "path", r.URL.Path, "to", role, "target", target)
	resp, err := a.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &timeoutError{what: fmt.Sprintf("forwarding the request to the %s at %s", role, nl.URL), err: err}
		}
		return fmt.Errorf("could not forward the request to the %s at %s: %w", role, nl.URL, err)
	}
	defer resp.Body.Close()

	for _, h := range relayedHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		a.log.Warn("relaying a forwarded response was cut short", "method", r.Method, "path", r.URL.Path,
			"target", target, "error", err)
	}
	return nil
}
