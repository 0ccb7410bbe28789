// Package mongodbsink is a sink connector that writes records to MongoDB collections with bulk
// writes.
//
// Each record becomes one write: an insert, a replace-or-insert (upsert) or a $set update of
// the document with the record's _id, or a delete for a tombstone. The _id comes from the
// record key, from value fields, from the record's Kafka coordinates, or is a new ObjectId.
// Put returns once its records are written, so every offset the runtime commits covers
// documents MongoDB has; after a crash the records since the last commit are written again,
// which with any id strategy but objectid leaves one document per _id (upsert and update) or
// dead-letters the duplicates (insert).
//
// Documents MongoDB rejects one by one (a duplicate key, a failed validation) and records that
// cannot be documents go to the error policy, while the rest of the batch is written. A server
// that cannot be reached, is not primary or times out makes Put return a retriable error, and
// the runtime hands the same batch in again; what was written already is left out.
package mongodbsink

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "mongodb-sink"

func init() {
	connect.Register(connect.Plugin{
		Name:   Name,
		Doc:    pluginDoc,
		Config: Config{},
		New:    func() connect.Connector { return &Connector{} },
	})
}

// Connector checks the configuration and gives every task a copy of it.
type Connector struct{ connect.TypedBase[Config] }

// Connector checks that the server answers before a configuration is stored.
var _ connect.Validator = (*Connector)(nil)

// Validate is the connection test of PUT /connector-plugins/mongodb-sink/config/validate: it
// connects and runs a ping, and says on connection.uri why that failed.
func (*Connector) Validate(ctx context.Context, cfg connect.Config) error {
	c, err := connect.Decode[Config](cfg)
	if err != nil {
		return err
	}
	client, err := connectClient(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, min(c.Timeout, validateTimeout))
	defer cancel()
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	if err := client.Database(c.Database).RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return &connect.FieldError{Key: "connection.uri", Message: fmt.Sprintf("Cannot reach MongoDB: %v", err)}
	}
	return nil
}

// NewTask returns a task that writes to MongoDB.
func (*Connector) NewTask() connect.SinkTask { return &Task{} }
