package rest

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// pathParam returns a path parameter, unescaped. chi routes on the escaped path when the
// request has one (a name with an escaped "/" or "%"), and then hands out escaped values.
func pathParam(r *http.Request, key string) string {
	v := chi.URLParam(r, key)
	if r.URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
	}
	return v
}

// taskParam returns the {task} path parameter. A task id that is not a number names no task:
// 404, as in Kafka Connect.
func taskParam(r *http.Request) (int, error) {
	s := pathParam(r, "task")
	id, err := strconv.Atoi(s)
	if err != nil {
		return 0, &httpError{status: http.StatusNotFound,
			msg: fmt.Sprintf("task %q of connector %q not found: task ids are numbers", s, pathParam(r, "connector"))}
	}
	return id, nil
}

// boolQuery returns a true/false query parameter, def when it is absent or empty.
func boolQuery(r *http.Request, name string, def bool) (bool, error) {
	v := strings.TrimSpace(r.URL.Query().Get(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter %s must be true or false, not %q", name, v)
	}
	return b, nil
}
