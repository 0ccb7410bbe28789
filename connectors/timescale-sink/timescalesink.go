// Package timescalesink is a sink connector that writes Kafka records into TimescaleDB (or
// plain PostgreSQL) tables at COPY speed.
//
// Each record becomes a row: its value's fields (nested objects flattened, or kept as jsonb)
// go to columns of the same name or as fields.mapping says, the time column comes from a
// value field or the record timestamp, and fields without a column may be collected in a
// catch-all jsonb column. Tables are created from the records when auto.create is set (as
// hypertables when the timescaledb extension is installed) and gain columns for new fields
// with auto.evolve.
//
// A Put is one transaction: append mode COPYs the batch into the table; upsert mode COPYs it
// into a temporary staging table and merges that with INSERT ... ON CONFLICT, or writes a
// batch of up to 100 rows as one INSERT ... ON CONFLICT (a single round trip). With
// exactly.once the transaction also stores each partition's next offset, and the task resumes
// from those offsets, so rows are written exactly once. A lost connection makes the runtime
// retry the same batch with backoff; a batch that fails on data is written row by row, each
// in a savepoint, so that only the bad rows go to the error policy with the database's
// message.
package timescalesink

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/connect"
)

// Name is the plugin's registered name.
const Name = "timescale-sink"

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

// NewTask returns a task that writes to the database.
func (*Connector) NewTask() connect.SinkTask { return &Task{} }

// Validate is the connection test of PUT /connector-plugins/timescale-sink/config/validate:
// it connects with connection.url and checks that the database answers and, with
// exactly.once, that the offsets table can be created.
func (c *Connector) Validate(ctx context.Context, cfg connect.Config) error {
	conf, err := connect.Decode[Config](cfg)
	if err != nil {
		return err
	}
	pc, err := pgx.ParseConfig(conf.URL)
	if err != nil {
		return &connect.FieldError{Key: "connection.url", Message: "Invalid connection URL: " + err.Error()}
	}
	pc.ConnectTimeout = conf.ConnectTimeout
	ctx, cancel := context.WithTimeout(ctx, conf.ConnectTimeout+conf.WriteTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return &connect.FieldError{Key: "connection.url", Message: fmt.Sprintf("Cannot connect to %s:%d: %v", pc.Host, pc.Port, err)}
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		return &connect.FieldError{Key: "connection.url", Message: fmt.Sprintf("Connected to %s:%d, but a query failed: %v", pc.Host, pc.Port, err)}
	}
	if conf.ExactlyOnce {
		id, _ := identifier(conf.OffsetsTable)
		if _, err := conn.Exec(ctx, ddl{&conf}.offsetsTable(id)); err != nil {
			return &connect.FieldError{Key: "offsets.table", Message: fmt.Sprintf("Cannot create the offsets table %s: %v", id.Sanitize(), dbMessage(err))}
		}
	}
	return nil
}

const pluginDoc = "Writes Kafka records into TimescaleDB hypertables (or plain PostgreSQL tables) with pgx: " +
	"append mode through COPY, upsert mode through COPY into a temporary table merged with " +
	"`INSERT ... ON CONFLICT` on `key.columns` in the same transaction (a batch of up to 100 rows as one " +
	"`INSERT ... ON CONFLICT`, a single round trip). Each record's value becomes a row: " +
	"nested objects are flattened into columns (`reading.temp` to `reading_temp`) or kept as jsonb, " +
	"`fields.mapping` renames and selects fields, and a catch-all jsonb column can keep the rest. The time " +
	"column comes from a value field or the Kafka timestamp.\n\n" +
	"With `auto.create` a missing table is created from the records, with column types from the schema " +
	"when records carry one (the JSON converter's schema envelope) or else from the JSON values; when the " +
	"`timescaledb` extension is installed it becomes a hypertable on the time column with the chunk " +
	"interval, compression and retention asked for (without the extension the log says so once and the " +
	"table stays plain). With `auto.evolve` a field that arrives later adds a column; columns are never " +
	"dropped or changed.\n\n" +
	"**Delivery.** A put is one transaction. With `exactly.once` it also stores each partition's next Kafka " +
	"offset in `offsets.table`, and tasks resume from those offsets when partitions are assigned, so a " +
	"killed worker neither duplicates nor loses a row, also in append mode; without it delivery is at least " +
	"once. A lost connection or a stopped database makes the runtime pause and retry the same batch with " +
	"backoff. A batch that fails on data (a type mismatch, a constraint) is written again row by row, each " +
	"in a savepoint, and only the rows the database refuses go to the error policy (and the dead-letter " +
	"topic) with the database's message, such as `invalid input syntax for type double precision: \"warm\"`. " +
	"Tombstones (null values) are skipped.\n\n" +
	"**Compressed chunks.** Late records may land in chunks the compression policy has already " +
	"compressed. Appends (COPY, also with `exactly.once`) go into them as they are, and the chunks stay " +
	"compressed. Upserts make TimescaleDB decompress the segments whose keys they touch, and TimescaleDB " +
	"refuses a transaction that decompresses more than `timescaledb.max_tuples_decompressed_per_dml_transaction` " +
	"rows (100,000 by default): the same batch would be refused on every retry, so the sink lifts that limit " +
	"on its own connections (`timescale.decompression.limit`, 0). A limit set there is kept, and a batch " +
	"over it fails the task with TimescaleDB's message rather than being retried for ever. A field that " +
	"arrives later adds its column to a compressed hypertable like to any other (`auto.evolve`).\n\n" +
	benchDoc
