package timescalesink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// class is what a database error means for the batch.
type class int

const (
	// classFatal: a setup problem (permissions, a wrong password, a missing table or unique
	// key) that retrying does not fix; the task fails with the message.
	classFatal class = iota
	// classRetry: the connection or the server is away for now; the same batch is tried again.
	classRetry
	// classData: a row did not fit (a type mismatch, a constraint); the batch is written row
	// by row so that only the bad rows go to the error policy.
	classData
	// classSchema: the table changed under the task (a column or the table dropped); its
	// description is read again and the batch retried.
	classSchema
)

// errRolledBack is a COMMIT that PostgreSQL answered with ROLLBACK: the transaction had
// failed. The batch is tried again.
var errRolledBack = errors.New("the transaction was rolled back instead of committed")

// classify says what err means.
func classify(err error) class {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, errRolledBack) {
		return classRetry
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifyCode(pgErr.Code, pgErr.Message)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr) && isAuthFailure(err):
		return classFatal
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return classRetry
	}
	msg := err.Error()
	if strings.Contains(msg, "conn closed") || strings.Contains(msg, "closed pool") || strings.Contains(msg, "conn busy") {
		return classRetry
	}
	// What is left is pgx failing to encode a value, which is the row's fault.
	return classData
}

func classifyCode(code, msg string) class {
	switch {
	case code == "57014" && strings.Contains(msg, "unable to encode"):
		return classData // pgx could not encode a value for COPY and cancelled it
	case code == "53400": // configuration limit exceeded (TimescaleDB's decompression limit): the same batch meets it again
		return classFatal
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"),                                      // insufficient resources
		code == "57P01", code == "57P02", code == "57P03", code == "57P05", // shutdown, crash, cannot connect now, idle session timeout
		strings.HasPrefix(code, "58"),    // system error
		code == "40001", code == "40P01", // serialization failure, deadlock
		code == "55P03", code == "25P03", code == "57014": // lock not available, idle in transaction timeout, statement timeout
		return classRetry
	case strings.HasPrefix(code, "22"), strings.HasPrefix(code, "23"), // data exception, integrity constraint
		code == "42804", code == "2200G": // datatype mismatch
		return classData
	case code == "42P01", code == "42703", // undefined table or column
		code == "0A000" && strings.Contains(msg, "cached plan"): // a table changed under a cached statement
		return classSchema
	}
	return classFatal
}

func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000"
	}
	return false
}

// dbMessage is the database's own words for an error: its message, detail and SQLSTATE.
func dbMessage(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err.Error()
	}
	s := pgErr.Message
	if pgErr.Detail != "" {
		s += " (" + pgErr.Detail + ")"
	}
	if pgErr.ColumnName != "" && !strings.Contains(s, pgErr.ColumnName) {
		s += ", column " + pgErr.ColumnName
	}
	return s + " [SQLSTATE " + pgErr.Code + "]"
}

// policyError is the error policy's refusal of a bad record: Put returns it as it is.
type policyError struct{ err error }

func (e policyError) Error() string { return e.err.Error() }
func (e policyError) Unwrap() error { return e.err }

// setupError is a configuration or schema problem retrying does not fix.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

func setupErrorf(format string, args ...any) error {
	return setupError{fmt.Errorf(format, args...)}
}
