package connect

import (
	"errors"
	"fmt"
	"strings"
)

type retriable struct{ err error }

func (r retriable) Error() string { return r.err.Error() }
func (r retriable) Unwrap() error { return r.err }

// Retriable marks err as passing (a lost connection, a timeout): the runtime retries the
// operation with backoff instead of failing the task. Retriable(nil) is nil.
func Retriable(err error) error {
	if err == nil {
		return nil
	}
	return retriable{err}
}

// IsRetriable reports whether err, or an error it wraps, was marked Retriable.
func IsRetriable(err error) bool {
	var r retriable
	return errors.As(err, &r)
}

// FieldError says which configuration key is wrong and why. Config validation returns them, and
// a connector's Validate may too; the REST API shows each on its key.
type FieldError struct {
	Key     string
	Message string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Message }

// FieldErrors collects the FieldErrors in err (which may be a join of several) by key; any
// other error is returned as the second result.
func FieldErrors(err error) (byKey map[string][]string, other []error) {
	byKey = map[string][]string{}
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			byKey[fe.Key] = append(byKey[fe.Key], fe.Message)
			return
		}
		other = append(other, err)
	}
	walk(err)
	return byKey, other
}

// DataError says which field of a record holds which bad value, so the message a user reads
// (in a task trace or a dead-letter header) names both.
type DataError struct {
	Field  string
	Value  any
	Reason string
}

func (e *DataError) Error() string {
	v := fmt.Sprint(e.Value)
	if s, ok := e.Value.(string); ok {
		v = fmt.Sprintf("%q", s)
	} else if b, ok := e.Value.([]byte); ok {
		v = fmt.Sprintf("%q", b)
	}
	const maxLen = 200
	if len(v) > maxLen {
		v = v[:maxLen] + "..."
	}
	if e.Field == "" {
		return fmt.Sprintf("bad value %s: %s", v, e.Reason)
	}
	return fmt.Sprintf("field %q: bad value %s: %s", e.Field, v, e.Reason)
}

// BadField returns a DataError naming a record field, its value and what is wrong with it.
func BadField(field string, value any, reason string, args ...any) error {
	if len(args) > 0 {
		reason = fmt.Sprintf(reason, args...)
	}
	return &DataError{Field: field, Value: value, Reason: strings.TrimSpace(reason)}
}

// FieldProblems collects what a config struct's Validate finds, each on its key:
//
//	var problems connect.FieldProblems
//	if c.Max < c.Min {
//		problems.Addf("max", "Invalid value %d: must be at least min (%d)", c.Max, c.Min)
//	}
//	return problems.Err()
type FieldProblems []error

// Addf adds a FieldError on key with a formatted message.
func (p *FieldProblems) Addf(key, format string, args ...any) {
	*p = append(*p, &FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
}

// Add adds err (a FieldError, or errors joined, from a helper); nil adds nothing.
func (p *FieldProblems) Add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

// Err returns the problems joined, nil when there are none.
func (p FieldProblems) Err() error { return errors.Join(p...) }
