package mongodbsink

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// errTimeSeriesUnsupported says the server made an ordinary collection where a time-series
// one was asked for.
var errTimeSeriesUnsupported = errors.New("the server does not support time-series collections")

// transientCodes are server error codes that pass: a primary stepping down, a node shutting
// down, a lost connection between nodes, a write conflict or an exceeded time limit.
var transientCodes = map[int32]bool{
	6:     true, // HostUnreachable
	7:     true, // HostNotFound
	50:    true, // MaxTimeMSExpired
	64:    true, // WriteConcernFailed
	89:    true, // NetworkTimeout
	91:    true, // ShutdownInProgress
	112:   true, // WriteConflict
	189:   true, // PrimarySteppedDown
	262:   true, // ExceededTimeLimit
	9001:  true, // SocketException
	10107: true, // NotWritablePrimary
	11600: true, // InterruptedAtShutdown
	11602: true, // InterruptedDueToReplStateChange
	13435: true, // NotPrimaryNoSecondaryOk
	13436: true, // NotPrimaryOrSecondary
	16500: true, // request rate too large (Cosmos DB's MongoDB API)
}

// transient reports whether err is worth retrying: the server is unreachable or not primary,
// or the operation timed out.
func transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || mongo.IsNetworkError(err) {
		return true
	}
	var le mongo.LabeledError
	if errors.As(err, &le) && (le.HasErrorLabel("RetryableWriteError") || le.HasErrorLabel("TransientTransactionError")) {
		return true
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		if bwe.WriteConcernError != nil {
			return true
		}
		for _, we := range bwe.WriteErrors {
			if transientCodes[int32(we.Code)] {
				return true
			}
		}
		return false
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for code := range transientCodes {
			if se.HasErrorCode(int(code)) {
				return true
			}
		}
	}
	return false
}

// writeError is the reason a document of a bulk write was rejected, for the dead-letter
// topic.
func writeError(coll string, we mongo.BulkWriteError) error {
	return fmt.Errorf("collection %s rejected the document (code %d): %s", coll, we.Code, we.Message)
}
