package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/sluicehq/sluice/worker/api"
)

// call runs fn, one call into the worker, under the request's context (which carries the
// request timeout). It returns when fn does or when the deadline passes, whichever is first,
// so a worker stuck waiting on the cluster cannot hold the HTTP request past the timeout; fn
// then keeps running and its result is dropped, as Kafka Connect's herder callbacks are.
//
// what says what the call does ("creating connector \"x\""): a deadline becomes
// "Request timed out while <what>", and an error that is not one of the runtime's sentinel
// errors is wrapped with it.
func call[T any](a *handlers, r *http.Request, what string, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ctx := r.Context()
	done := make(chan result, 1) // buffered: a late result must not block the goroutine
	go func() {
		defer func() {
			if p := recover(); p != nil {
				a.log.Error("worker call panicked", "call", what, "panic", p, "stack", string(debug.Stack()))
				done <- result{err: fmt.Errorf("worker panicked: %v", p)}
			}
		}()
		v, err := fn(ctx)
		done <- result{v: v, err: err}
	}()
	select {
	case res := <-done:
		return res.v, classify(what, res.err)
	case <-ctx.Done():
		var zero T
		return zero, classify(what, ctx.Err())
	}
}

// call0 is call for worker methods that return only an error.
func call0(a *handlers, r *http.Request, what string, fn func(context.Context) error) error {
	_, err := call(a, r, what, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// classify gives a worker error the context the answer needs: deadlines become timeout
// errors, errors the API maps to a status pass unchanged, others are wrapped with what.
func classify(what string, err error) error {
	var (
		nl *api.NotLeaderError
		he *httpError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &timeoutError{what: what, err: err}
	case errors.As(err, &nl), errors.As(err, &he),
		errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrExists),
		errors.Is(err, api.ErrBadRequest), errors.Is(err, api.ErrRebalance):
		return err
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: the request was canceled (the client went away): %w", what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
