// Package rest is Sluice's HTTP API: Kafka Connect's REST API, same paths, bodies and status
// codes, so tools written for Kafka Connect work unchanged. It reaches the worker through the
// small interface it defines itself (Worker); New builds the handler.
//
// Every route is described in openapi.yaml, served at GET /openapi.yaml. Tests keep the two
// honest: the router's routes and the document's operations must be the same set, every
// answer the tests see must match the document's schemas, and the response schemas must
// have exactly the JSON fields of the Go types in worker/api.go.
//
// Conventions, as in Kafka Connect:
//
//   - Errors are {"error_code": <status>, "message": "..."}. The worker's errors map by
//     errors.Is: worker.ErrNotFound 404, ErrExists 409, ErrBadRequest 400, ErrRebalance 409,
//     anything else 500 (wrapped with what the request was doing). Unknown paths answer 404
//     and wrong methods 405 (with Allow), with the same body.
//   - Every call into the worker runs under Options.RequestTimeout (90 s by default). Past it
//     the API answers 500 "Request timed out while <what it was doing>", even when the worker
//     ignores its context; GET /health waits at most 10 s and then answers 500 unhealthy.
//   - A worker method that returns *worker.NotLeaderError makes the API replay the request
//     (method, path, query, body, Content-Type, Accept, Authorization) to the URL in the error,
//     adding forward=true; a worker receiving forward=true may forward once more with
//     forward=false; a worker receiving forward=false that is still not the target, or one
//     that knows no target, answers 409. The target's status, Content-Type, Location and body
//     are relayed as they are. Which requests must run elsewhere the worker decides.
//   - Configuration bodies are flat JSON objects of strings; numbers and booleans are taken
//     as their text. In PATCH /connectors/{connector}/config a null removes a setting. In
//     PATCH /connectors/{connector}/offsets numbers reach the worker as int64 when they are
//     integers, float64 otherwise.
//   - Nil slices and maps from the worker are answered as [] and {}, never null.
//   - A trailing slash is ignored; names with "/" or "%" in them are addressed escaped.
package rest
