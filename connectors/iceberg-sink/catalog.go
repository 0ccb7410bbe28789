package icebergsink

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	_ "github.com/apache/iceberg-go/catalog/rest" // registers the rest catalog
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// warehouses (only S3: GCS and Azure are not offered)
	"github.com/apache/iceberg-go/table"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/sluicehq/sluice/connect"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// openCatalog connects to the configured catalog. The caller closes it with closeCatalog.
func openCatalog(ctx context.Context, c Config) (catalog.Catalog, error) {
	props := iceberg.Properties{"warehouse": c.Warehouse}
	if strings.HasPrefix(c.Warehouse, "s3") {
		if c.S3.Endpoint != "" {
			props[iceio.S3EndpointURL] = c.S3.Endpoint
		}
		if c.S3.Region != "" {
			props[iceio.S3Region] = c.S3.Region
		}
		if c.S3.AccessKey != "" {
			props[iceio.S3AccessKeyID] = c.S3.AccessKey
			props[iceio.S3SecretAccessKey] = c.S3.SecretKey
		}
		props[iceio.S3ForceVirtualAddressing] = strconv.FormatBool(!c.S3.PathStyle)
	}
	switch c.CatalogType {
	case CatalogREST:
		props["type"] = "rest"
		props["uri"] = c.CatalogURI
		if c.Credential != "" {
			props["credential"] = c.Credential
		}
		if c.Token != "" {
			props["token"] = c.Token
		}
		return catalog.Load(ctx, c.CatalogName, props)
	default:
		driver, dialect, dsn, err := sqlSource(c)
		if err != nil {
			return nil, err
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			return nil, err
		}
		if driver == "sqlite" {
			// One writer at a time; the busy timeout makes concurrent commits wait, not fail.
			db.SetMaxOpenConns(1)
		}
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("connecting to the catalog database: %w", err)
		}
		props["init_catalog_tables"] = "true"
		props[sqlcat.SchemaVersionKey] = sqlcat.SchemaVersionV1
		cat, err := sqlcat.NewCatalog(c.CatalogName, db, dialect, props)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		return &sqlCatalog{Catalog: cat, db: db}, nil
	}
}

// sqlCatalog closes the database handle it was opened on.
type sqlCatalog struct {
	*sqlcat.Catalog
	db *sql.DB
}

func (s *sqlCatalog) Close() error {
	err := s.Catalog.Close()
	return errors.Join(err, s.db.Close())
}

func closeCatalog(cat catalog.Catalog) error {
	if c, ok := cat.(catalog.Closer); ok {
		return c.Close()
	}
	return nil
}

// sqlSource picks the driver, dialect and DSN of a sql catalog's URI.
func sqlSource(c Config) (driver string, dialect sqlcat.SupportedDialect, dsn string, err error) {
	uri := c.CatalogURI
	if strings.HasPrefix(uri, "postgres://") || strings.HasPrefix(uri, "postgresql://") {
		u, err := url.Parse(uri)
		if err != nil {
			return "", "", "", fmt.Errorf("catalog.uri: %w", err)
		}
		if c.Password != "" {
			user := ""
			if u.User != nil {
				user = u.User.Username()
			}
			u.User = url.UserPassword(user, c.Password)
		}
		return "pgx", sqlcat.Postgres, u.String(), nil
	}
	path := strings.TrimPrefix(strings.TrimPrefix(uri, "sqlite://"), "file:")
	if path == "" {
		return "", "", "", errors.New("catalog.uri: no SQLite file")
	}
	q := "_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	if strings.Contains(path, "?") {
		return "sqlite", sqlcat.SQLite, "file:" + path + "&" + q, nil
	}
	return "sqlite", sqlcat.SQLite, "file:" + path + "?" + q, nil
}

// offsetsKey is the snapshot summary property holding a connector's Kafka offsets: a JSON
// object from "topic/partition" to the offset of the next record to read, for every
// partition whose records the connector ever committed to the table.
func offsetsKey(connector string) string { return "sluice.kafka.offsets." + connector }

// storedOffsets reads the offsets of the connector from the newest snapshot of the table's main
// branch that has them; other writers' snapshots in between are skipped.
func storedOffsets(tbl *table.Table, key string) (map[string]int64, error) {
	meta := tbl.Metadata()
	for s := tbl.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if v, ok := s.Summary.Properties[key]; ok {
				out := map[string]int64{}
				if err := json.Unmarshal([]byte(v), &out); err != nil {
					return nil, fmt.Errorf("snapshot %d: property %s: %w", s.SnapshotID, key, err)
				}
				return out, nil
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = meta.SnapshotByID(*s.ParentSnapshotID)
	}
	return map[string]int64{}, nil
}

// partitionSpec builds the spec of table.partition.by against a new table's schema.
func partitionSpec(sc *iceberg.Schema, terms []string) (*iceberg.PartitionSpec, error) {
	var opts []iceberg.PartitionOption
	for _, term := range terms {
		tr, col, err := parsePartitionTerm(term)
		if err != nil {
			return nil, err
		}
		transform, err := iceberg.ParseTransform(tr)
		if err != nil {
			return nil, fmt.Errorf("partition term %q: %w", term, err)
		}
		if _, ok := sc.FindFieldByName(col); !ok {
			return nil, connect.BadField(col, nil, "missing: the first record of a new table must have the partition column %s", col)
		}
		name := col
		if tr != "identity" {
			base, _, _ := strings.Cut(tr, "[")
			name = col + "_" + base
		}
		opts = append(opts, iceberg.AddPartitionFieldByName(col, name, transform, sc, nil))
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return nil, err
	}
	return &spec, nil
}
