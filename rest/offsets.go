package rest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
)

// message is the body of the offsets endpoints' success answers.
type message struct {
	Message string `json:"message"`
}

// getOffsets answers GET /connectors/{connector}/offsets.
func (a *handlers) getOffsets(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	offsets, err := call(a, r, fmt.Sprintf("reading the offsets of connector %q", name), func(ctx context.Context) (api.ConnectorOffsets, error) {
		return a.w.ConnectorOffsets(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeOffsets(offsets))
	return nil
}

// alterOffsets answers PATCH /connectors/{connector}/offsets with body
// {"offsets": [{"partition": {...}, "offset": {...} | null}]}: 200 {"message"}; 400 when the
// list is missing or empty or an entry has no partition. Numbers in partitions and offsets
// reach the worker as int64 when they are integers, float64 otherwise.
func (a *handlers) alterOffsets(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	var body api.ConnectorOffsets
	const what = `a JSON object {"offsets": [{"partition": {...}, "offset": {...} or null}]}`
	if err := decodeBody(r, &body, what, decodeOptions{numbers: true}); err != nil {
		return err
	}
	if len(body.Offsets) == 0 {
		return badRequest("Partitions / offsets need to be provided for an alter offsets request: " +
			`the body's "offsets" list is missing or empty`)
	}
	for i, o := range body.Offsets {
		if o.Partition == nil {
			return badRequest(`offsets[%d] has no "partition"`, i)
		}
		plainNumbers(o.Partition)
		if o.Offset != nil {
			plainNumbers(o.Offset)
		}
	}
	msg, err := call(a, r, fmt.Sprintf("altering the offsets of connector %q", name), func(ctx context.Context) (string, error) {
		return a.w.AlterOffsets(ctx, name, body)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, message{Message: msg})
	return nil
}

// resetOffsets answers DELETE /connectors/{connector}/offsets: 200 {"message"}.
func (a *handlers) resetOffsets(w http.ResponseWriter, r *http.Request) error {
	name := pathParam(r, "connector")
	msg, err := call(a, r, fmt.Sprintf("resetting the offsets of connector %q", name), func(ctx context.Context) (string, error) {
		return a.w.ResetOffsets(ctx, name)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, message{Message: msg})
	return nil
}
