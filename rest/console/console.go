// Package console is the web console every worker serves at /ui/: a page that talks only to
// the worker's public REST API (so it works through any worker and behind a proxy), with its
// files embedded in the binary and no build step. It lists the connectors and their tasks,
// with each failed task's trace, acts on them (pause, resume, stop, restart, delete, reset
// offsets), creates and edits connectors in forms made from the plugins' config declarations
// with their validation errors as the user types, and shows the plugins and the cluster.
//
// The page's requests carry the browser's credentials for the worker (HTTP Basic, asked for
// by the browser on the first 401), and it hides the actions from a caller whose answers say
// the read role (X-Sluice-Role). Every file is served with a Content-Security-Policy that
// allows scripts and styles from the worker alone and no framing.
package console

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where the console is served.
const Prefix = "/ui/"

// securityHeaders keep the page's scripts to its own files and out of other pages' frames.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// Handler serves the console's files under Prefix; any other path under it is the page.
func Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	page, _ := fs.ReadFile(files, "index.html")
	server := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		name := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/"))), "/")
		if name == "index.html" || name == "" || name == "." {
			name = ""
		} else if _, err := fs.Stat(files, name); err != nil {
			name = ""
		}
		if name == "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		server.ServeHTTP(w, r2)
	})
}
